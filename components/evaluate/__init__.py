"""The verdict: both trained models scored by the same code on the same test split."""
