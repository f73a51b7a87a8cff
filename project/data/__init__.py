"""Data: the credit-card fraud CSV, QQP question pairs, and the bundled synthetic samples."""
