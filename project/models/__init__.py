"""Models: the fraud ConvNet, the RoBERTa classifier, and paper-faithful LoRA."""
