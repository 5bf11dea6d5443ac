"""The post-study refit: cost figures of every framework on the same configurations."""
