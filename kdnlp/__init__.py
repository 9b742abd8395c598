"""kdnlp: knowledge distillation for NLP — a fine-tuned BERT teacher into a small, fast student."""

__version__ = "0.1.0"
