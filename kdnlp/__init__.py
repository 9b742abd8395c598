"""kdnlp: knowledge distillation for NLP — a fine-tuned BERT teacher into a small, fast student.

Python API (docs/python.md): kdnlp.load_config(path, overrides), kdnlp.Trainer(cfg).run(), kdnlp.predict(model_dir,
texts), kdnlp.load(model_dir).predict(texts). Imported on first use, so `import kdnlp` (and the CLI's --help and error paths) stays light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": ("kdnlp.config", "load_config"),
    "Config": ("kdnlp.config", "Config"),
    "UserError": ("kdnlp.errors", "UserError"),
    "Trainer": ("kdnlp.trainer", "Trainer"),
    "predict": ("kdnlp.api", "predict"),
    "load": ("kdnlp.predictor", "load"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdnlp' has no attribute {name!r}")
    import importlib
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # next time a plain attribute
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
