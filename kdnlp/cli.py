"""Command line: `kdnlp <command> --config X [--set section.key=value ...]`. `python distill.py` = `kdnlp distill`.

User errors print one line `kdnlp: error: ...` and exit 2 (the traceback only with --debug).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError

DEFAULT_CONFIG = "configs/tnews.yaml"
COMMANDS = {
    "distill": "teacher fine-tuning -> logit cache -> student -> reports -> comparison table",
    "train-teacher": "fine-tune the teacher, select on dev, report on test",
    "cache-logits": "run the trained teacher over train once and cache its logits",
    "augment": "build (or show) the Tang et al. transfer set of augmented training texts (augment: section)",
    "train-student": "train the student (alpha*CE + T*teacher term); --alpha 1 --T 0 = student alone",
    "evaluate": "test-set report for --model teacher|student|<student.name>",
    "predict": "predict labels for TEXT..., --pair A B, or --input FILE (one text, or two tab-separated, per line)",
    "export": "export --model to ONNX or TorchScript (optionally int8) and check parity on test",
    "bench": "size, latency, throughput, memory and test metric of each model -> bench.json/.md/.png",
    "pretrain": "masked-LM pretraining of the teacher on --corpus FILE... -> <output_dir>/pretrained",
    "label": "write a teacher.outputs file: any fine-tuned --teacher's logits for --input texts (no config needed)",
    "fastbert-speeds": "FastBERT student: accuracy, examples/s and mean layers on test (or --split dev) for each --speeds value",
    "config": "print the resolved config (every default filled in) as YAML; runs write it to <output_dir>/config.resolved.yaml",
    "frontier": "train several students against one cached teacher, measure each, name the one to deploy -> frontier.md/.json/.png",
    "serve": "serve a model over HTTP without torch: --bundle DIR, or --model M of --config X (exported first)",
    "plot": "train-loss and dev-metric curves of every model in <output_dir> (train_log.json) -> <output_dir>/curves.png",
}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
    common.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any config value, e.g. --set student.num_layers=3 (repeatable)")
    common.add_argument("--alpha", type=float, help="distill.alpha: weight of the gold-label cross-entropy")
    common.add_argument("--T", type=float, help="distill.T: weight of the teacher term (not the temperature)")
    common.add_argument("--temperature", type=float, help="distill.temperature (for distill.loss=kl)")
    common.add_argument("--epochs", type=int, help="epochs of the model(s) this command trains")
    common.add_argument("--device", help="train.device: auto|cpu|cuda|cuda:N")
    common.add_argument("--output-dir", help="output_dir (default saved_dict/<config stem>)")
    common.add_argument("--seed", type=int, help="train.seed")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = argparse.ArgumentParser(prog="kdnlp", description="Knowledge distillation for NLP: BERT teacher -> small student.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        if name == "pretrain":
            p.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help="text files, one text per line")
        if name == "fastbert-speeds":
            p.add_argument("--speeds", default="0,0.1,0.3,0.5,0.8", help="comma-separated exit thresholds")
            p.add_argument("--split", choices=("dev", "test"), default="test",
                           help="pick the speed on dev; report it on test (default test)")
        if name in ("evaluate", "predict", "export", "fastbert-speeds", "serve"):
            p.add_argument("--model", default="student",
                           help="teacher, or a student's name (student.name; default student)")
        if name == "augment":
            p.add_argument("--show", type=int, default=5, metavar="N", help="print N random augmented examples")
        if name in ("distill", "train-teacher", "train-student", "pretrain"):
            p.add_argument("--resume", action="store_true",
                           help="continue interrupted training from its last completed epoch (<output_dir>/<name>.resume)")
        if name == "predict":
            p.add_argument("texts", nargs="*", metavar="TEXT")
            p.add_argument("--input", help="file with one text per line (sentence pairs: two tab-separated columns)")
            p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                           help="a sentence pair to classify (repeatable)")
            p.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "label":
            p.add_argument("--input", required=True, help="texts: a .txt (one per line) or a data file (json/jsonl/csv/tsv)")
            p.add_argument("--teacher", required=True, help="a fine-tuned model: directory, package:<module>/<dir> or hub id")
            p.add_argument("--output", default="teacher_outputs.jsonl", help="the .jsonl to write (default teacher_outputs.jsonl)")
            p.add_argument("--max-length", type=int, default=128, help="tokens per text (default 128)")
            p.add_argument("--batch-size", type=int, default=64, help="at most this many texts per batch (default 64)")
            p.add_argument("--max-tokens", type=int, help="padded tokens per batch (default 4096 on the CPU, 65536 on CUDA)")
            p.add_argument("--text-field", default="auto", help="text field of a data file (default: text, sentence, content)")
        if name == "export":
            p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
            p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization of the weights")
            p.add_argument("--examples", type=int, help="parity check on the first N test rows (default all)")
            p.add_argument("--bundle", metavar="DIR", help="also write a serving bundle (kdnlp serve --bundle DIR)")
        if name == "serve":  # the serving flags (kdnlp/runtime/settings.py)
            from .runtime.settings import add_serve_arguments
            add_serve_arguments(p)
            p.add_argument("--quantize", choices=["int8"], help="with --config: serve the int8 export")
        if name in ("cache-logits", "bench"):
            p.add_argument("--fixed-padding", action="store_true",
                           help="pad every example to data.max_length in file order (the slow way, for comparison)")
        if name == "frontier":
            p.add_argument("--students", help="comma-separated variant names (default: frontier.variants, else the preset)")
            p.add_argument("--retain", type=float, help="recommend the fastest student keeping this share of the "
                           "teacher's dev score (default frontier.retain, 0.97)")
            p.add_argument("--threads", type=int, help="torch CPU threads (train.threads)")
            p.add_argument("--examples", type=int, default=1024, help="test texts timed at batch 64 (default 1024)")
            p.add_argument("--runs", type=int, default=100, help="single texts timed for the p50 latency (default 100)")
            p.add_argument("--remeasure", action="store_true", help="time models again whose measurements are stored")
            p.add_argument("--train-only", action="store_true", help="train the teacher and the students, measure nothing")
        if name == "bench":
            p.add_argument("--models", help="comma-separated model folders (default teacher,<student.name>)")
            p.add_argument("--threads", type=int, help="torch / onnxruntime CPU threads (train.threads)")
            p.add_argument("--runs", type=int, default=50, help="batch-1 latency runs after warm-up (default 50)")
            p.add_argument("--examples", type=int, default=1024, help="test rows for throughput (default 1024)")
            p.add_argument("--batch-size", type=int, default=64, help="throughput batch size (default 64)")
            p.add_argument("--cache-pass", type=int, default=0, metavar="N",
                           help="also time the teacher over N train examples: sorted dynamic vs fixed padding")
            p.add_argument("--results", default="bench", help="results file stem: <output_dir>/<stem>.json/.md/.png")
            p.add_argument("--speeds", default="0,0.1,0.3,0.5",
                           help="FastBERT models among --models: test accuracy, examples/s, mean layers per speed")
            p.add_argument("--init-untrained", action="store_true",
                           help="only save an untrained teacher and student.name where missing, for speed-only benchmarks")
    return parser


def _overrides(args) -> list[str]:
    sets = list(args.set)
    for flag, key in (("alpha", "distill.alpha"), ("T", "distill.T"), ("temperature", "distill.temperature"),
                      ("device", "train.device"), ("seed", "train.seed"), ("output_dir", "output_dir"),
                      ("threads", "train.threads")):
        value = getattr(args, flag, None)
        if value is not None:
            sets.append(f"{key}={value}")
    if args.epochs is not None:
        sections = {"train-teacher": ["teacher"], "train-student": ["student"], "distill": ["teacher", "student"],
                    "pretrain": ["pretrain"], "frontier": ["student"]}  # frontier: every variant's (a variant's own wins)
        sets += [f"{s}.epochs={args.epochs}" for s in sections.get(args.command, [])]
    return sets


def _predict(trainer, args) -> None:
    from .api import format_prediction, predict_with  # kdnlp.predict() runs the same code
    texts = list(args.texts) + [tuple(p) for p in args.pair]
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise UserError(f"{path}: input file not found")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            cols = line.split("\t")  # quoting off: a pair file is two raw columns
            if len(cols) > 2 or (len(cols) == 2 and not all(c.strip() for c in cols)):
                raise UserError(f"{path} line {lineno}: expected one text, or two tab-separated texts of a pair")
            texts.append(line.strip() if len(cols) == 1 else (cols[0].strip(), cols[1].strip()))
    if not texts:
        raise UserError("predict: give texts as arguments, --pair A B, or --input FILE (one text per line)")
    if len({isinstance(t, tuple) for t in texts}) > 1:
        raise UserError("predict: give either single texts or sentence pairs, not both")
    for result in predict_with(trainer, trainer.out / args.model, texts):
        print(format_prediction(result, args.json))


def _speeds(text: str) -> list[float]:
    try:
        speeds = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--speeds {text}: use comma-separated numbers in [0, 1], e.g. 0,0.1,0.5") from None
    if not speeds or not all(0 <= s <= 1 for s in speeds):
        raise UserError(f"--speeds {text}: use comma-separated numbers in [0, 1], e.g. 0,0.1,0.5")
    return speeds


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines reach log files as they happen
    try:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if args.command == "serve" and args.bundle:  # torch-free from here on: kdnlp/runtime/
            from .runtime.server import serve
            from .runtime.settings import settings_from_args
            serve(settings_from_args(args))
            return 0
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if args.command == "label":  # runs a model, no config: the two halves can be on different machines
            from .label import label
            label(args.input, args.teacher, args.output, args.max_length, args.batch_size, args.device or "auto",
                  args.text_field, args.max_tokens)
            return 0
        if args.command == "frontier":  # reads the config itself: its variants are configs of their own
            from .frontier import frontier
            frontier(args.config, _overrides(args), args.students, args.retain, args.examples, args.runs,
                     remeasure=args.remeasure, train_only=args.train_only)
            return 0
        from .config import dump_config, load_config
        cfg = load_config(args.config, _overrides(args))
        if args.command == "config":  # before the Trainer: nothing is loaded, built or written
            print(dump_config(cfg), end="")
            return 0
        if args.command == "plot":
            from .plot import plot_curves
            print(f"curves: {plot_curves(cfg.out)}")
            return 0
        from .trainer import Trainer
        trainer = Trainer(cfg, resume=getattr(args, "resume", False))
        from .distributed import quiet_other_ranks
        quiet_other_ranks(trainer.accelerator)  # under accelerate launch / torchrun: one copy of the output
        if args.command in ("train-teacher", "train-student", "cache-logits"):
            trainer.preflight(args.command)  # distill runs it inside Trainer.run
        if args.command == "distill":
            trainer.run()
        elif args.command == "train-teacher":
            trainer.train_teacher()
        elif args.command == "cache-logits":
            trainer.teacher_logits("train", fixed_padding=args.fixed_padding)
            if cfg.data.unlabeled:  # and the unlabelled pile, in resumable shards (kdnlp/transfer/)
                from .transfer.steps import label_pile
                label_pile(trainer)
        elif args.command == "augment":
            from .augment import describe
            ts = trainer.transfer_set()
            print(describe(ts, trainer.augment_originals(), n_show=args.show))
        elif args.command == "train-student":
            trainer.train_student()
        elif args.command == "evaluate":
            trainer.evaluate(args.model)
        elif args.command == "predict":
            _predict(trainer, args)
        elif args.command == "export":
            from .export import export
            export(trainer, args.model, args.format, args.quantize, args.examples, args.bundle)
        elif args.command == "serve":  # export a bundle here, then serve it from a fresh, torch-free process
            from .export import export
            from .runtime.settings import settings_from_args, to_argv
            settings = settings_from_args(args)
            settings.bundle = str(trainer.out / args.model / ("bundle-int8" if args.quantize else "bundle"))
            export(trainer, args.model, "onnx", args.quantize, None, settings.bundle)
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, "-m", "kdnlp.runtime.server", *to_argv(settings)])
        elif args.command == "bench":
            from .bench import bench, init_untrained
            if args.init_untrained:
                init_untrained(trainer)
                return 0
            models = args.models.split(",") if args.models else ["teacher", cfg.student.name]
            bench(trainer, [m.strip() for m in models if m.strip()], runs=args.runs, examples=args.examples,
                  batch_size=args.batch_size, fixed_padding=args.fixed_padding, cache_examples=args.cache_pass,
                  results=args.results, speeds=_speeds(args.speeds))
        elif args.command == "pretrain":
            from .pretrain import pretrain
            pretrain(trainer, args.corpus)
        elif args.command == "fastbert-speeds":
            from .students.fastbert import speeds_report
            speeds_report(trainer, args.model, _speeds(args.speeds), args.split)
    except UserError as e:
        if args.debug:
            raise
        print(f"kdnlp: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable output dir, disk full, unreadable file: name the path, no traceback
        if args.debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"kdnlp: error: {where}{e.strerror or e}; check the path and its permissions / free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.command in ("distill", "train-teacher", "train-student", "pretrain")
        print("kdnlp: interrupted" + ("; rerun the same command with --resume to continue from the last completed "
                                      "epoch" if resumable else ""), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
