"""The PyTorch branch: Lightning trials tuned by Optuna, on the shared splits and constants."""
