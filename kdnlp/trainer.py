"""Trainer: the one training loop, used for the teacher and for every student, and the order of the steps.

    train_teacher()         fine-tune the teacher, select on dev, save <out>/teacher, report on test
                            (a given teacher — teacher.fine_tuned / teacher.outputs — is not trained)
    cache_teacher_logits()  run the saved teacher once over train -> <out>/logits/train.npy (+ manifest)
    transfer_set()          augment.enabled: Tang et al.'s augmented texts -> <out>/augment/ (labelled via the cache)
    train_student()         alpha * CE + T * D(student, cached teacher logits) -> <out>/student, report on test
    evaluate(name)          test report for <out>/<name>
    run()                   preflight checks, all of the above, then the teacher-vs-student table

The teacher sources, the logit cache and the transfer set live in kdnlp/pipeline.py (PipelineSteps, inherited).
"""
from __future__ import annotations

import math
import random
import time
from contextlib import closing, nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import ResumePoint, run_fingerprint
from .config import Config, dump_config
from .data import EncodedSplit, Splits, model_inputs, prefetch
from .distributed import gather_rows, make_accelerator, shard_batches
from .errors import UserError
from .fileio import dir_size, write_json, write_text
from .intermediate import IntermediateDistiller
from .modeldir import LABELS_FILE, WEIGHT_NAMES, BackgroundSaver, load_model_dir
from .ner import IGNORE, TokenLogits
from .pipeline import PipelineSteps
from .report import comparison_table
from .students import STAGED_TRAINING, STUDENTS, StudentContext
from .tasks import TASKS
from .pooling import apply_pooling
from .teacher import build_random_teacher, load_pretrained_teacher, resolve_pretrained
from .tracking import start_run, tracker_kwargs


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device: {spec} requested but CUDA is not available (use --device cpu or auto)")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer(PipelineSteps):
    # batches collated ahead in a background thread: None = auto, 2 on CUDA (the GPU computes while the CPU collates)
    # and 0 on the CPU, where a collating thread only competes with torch's own threads for the same cores
    # (measured on 2 cores: up to 20% slower epochs with it)
    prefetch_batches: int | None = None

    def __init__(self, cfg: Config, resume: bool = False):
        self.cfg = cfg
        self.resume = resume  # --resume: continue interrupted training from <output_dir>/<name>.resume
        self.task = TASKS[cfg.task]
        self.out = cfg.out
        # Accelerate: mixed precision (train.mixed_precision) and, under accelerate launch / torchrun, one process
        # per device training data-parallel (kdnlp/distributed.py). One process runs exactly as without it.
        self.accelerator, self.device = make_accelerator(cfg.train.mixed_precision, pick_device(cfg.train.device),
                                                         **tracker_kwargs(cfg.train.report_to, cfg.out))
        self.is_main = self.accelerator.is_main_process  # only it writes checkpoints, caches and reports
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self._splits: Splits | None = None

    # ------------------------------------------------------------ data

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            t0 = time.perf_counter()
            # a given teacher (fine_tuned / outputs) can supply targets for train texts without a gold label
            t = self.cfg.teacher
            given = t.fine_tuned is not None or t.outputs is not None
            self._splits = self.task.load_splits(self.cfg.data, self.cfg.data.seed, allow_unlabelled=given)
            s = self._splits
            print(f"data: {len(s.train)} train / {len(s.dev)} dev ({s.dev_source}) / {len(s.test)} test, "
                  f"{len(s.labels)} {'tags' if self.cfg.task == 'ner' else 'classes'} ({time.perf_counter() - t0:.1f}s)")
        return self._splits

    def _check_labels(self, labels: list[str], where: Path) -> None:
        if labels != self.splits.labels:
            raise UserError(f"{where}: model was trained with labels {labels[:10]} but the data has "
                            f"{self.splits.labels[:10]}; set data.labels to the model's {where / LABELS_FILE}")

    # ------------------------------------------------------------ the training loop

    def _autocast(self):
        return self.accelerator.autocast()  # train.mixed_precision; a no-op for "no"

    def prefetch_depth(self) -> int:
        if self.prefetch_batches is not None:
            return self.prefetch_batches
        return 2 if self.device.type == "cuda" else 0

    def eval_tokens(self, batch_size: int) -> int | None:
        """The token budget of an inference batch: train.eval_tokens, or auto (see TrainConfig.eval_tokens):
        65536 on CUDA, None (batch_size rows, as before) on the CPU, where bigger batches of short rows measured
        slower (the SST-2 cache pass: 580 vs 667 examples/s)."""
        if self.cfg.train.eval_tokens:
            return self.cfg.train.eval_tokens
        return 65536 if self.device.type == "cuda" else None

    @torch.no_grad()
    def predict_logits(self, model, data: EncodedSplit, batch_size: int, desc: str = "predict",
                       device: torch.device | None = None, fixed_padding: bool = False) -> np.ndarray | TokenLogits:
        """Logits for every row of `data`, in row order (batches are length-sorted, then restored).

        Batches are packed by a token budget (eval_tokens(batch_size): on CUDA by default) — many short rows or few
        long ones per batch — or else are `batch_size` rows. Token classifiers give a TokenLogits: per row, the logits of its valid (labelled)
        positions only. With several processes each predicts a disjoint shard and all get the gathered result;
        with an explicit `device` (the CPU speed measurement, kdnlp bench) this process alone predicts
        everything, in fp32, `batch_size` rows at a time.
        fixed_padding: pad every row to data.max_length in file order (the seed's way; for speed comparisons)."""
        local = device is not None
        device = device or self.device
        shard = (0, 1) if local else (self.accelerator.process_index, self.accelerator.num_processes)
        cuda = device.type == "cuda"
        model.eval()
        pieces = []  # (example indices, their logits) per batch
        bar = tqdm(total=len(data), unit="ex", desc=desc, leave=False, disable=None if self.is_main else True)
        fixed_length = self.cfg.data.max_length if fixed_padding else None
        multiple = 8 if cuda and not local else None
        batches = data.eval_batch_indices(batch_size, fixed_length, shard, None if local else self.eval_tokens(batch_size),
                                          multiple)

        def load(index: np.ndarray) -> dict:  # collated in the background; pinned on CUDA for async copies
            batch = data.collate(index, fixed_length, multiple)
            return {k: v.pin_memory() for k, v in batch.items()} if cuda else batch

        for batch in prefetch(load, batches, 0 if local else self.prefetch_depth()):
            bar.update(len(batch["index"]) * shard[1])  # examples/s of all processes, not batches/s
            with (self._autocast() if not local else nullcontext()):
                logits = model(**model_inputs(model, batch, device, non_blocking=cuda)).logits
            logits = logits.float().cpu().numpy()
            if logits.ndim == 3:  # keep the valid (labelled) positions of each row
                valid = (batch["labels"] != IGNORE).numpy()
                logits = [logits[b][valid[b]] for b in range(len(logits))]
            pieces.append((batch["index"].numpy(), logits))
        bar.close()
        return gather_rows(pieces, len(data), model.config.num_labels, None if local else self.accelerator)

    def fit(self, model, tokenizer, loss_fn, hp, save_dir: Path, name: str,
            teacher_logits: np.ndarray | None = None, train_examples: list | None = None,
            task=None, splits: Splits | None = None) -> dict:
        """Train `model` with `loss_fn`, evaluate dev each epoch (and every eval_every steps), keep the best.

        `train_examples` (default: the train split) is what the student sees: the transfer set when augmenting;
        row i of `teacher_logits` belongs to train_examples[i]. `task` and `splits` default to this config's;
        `kdnlp pretrain` passes its masked-LM task and corpus splits (kdnlp/pretrain.py)."""
        cfg, splits, task = self.cfg, splits or self.splits, task or self.task
        t_start = time.perf_counter()
        seed_everything(cfg.train.seed)
        train = task.encode(train_examples or splits.train, tokenizer, cfg.data.max_length)
        dev = task.encode(splits.dev, tokenizer, cfg.data.max_length)
        t_encoded = time.perf_counter()
        cuda = self.device.type == "cuda"
        model.to(self.device)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        params = [{"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": hp.weight_decay},
                  {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
        # loss-side parameters (e.g. intermediate distillation's projections): trained here, resumed, never saved
        extra = getattr(loss_fn, "extra_module", None)
        if extra is not None:
            extra.to(self.device)
            params.append({"params": list(extra.parameters()), "weight_decay": 0.0})
        # fused AdamW: one kernel for the whole update instead of several per parameter (CUDA tensors only)
        fused = cuda and all(p.is_cuda for g in params for p in g["params"])
        optimizer = torch.optim.AdamW(params, lr=hp.lr, fused=fused or None)
        accelerator, accum = self.accelerator, cfg.train.grad_accum
        world = accelerator.num_processes
        total_steps = hp.epochs * math.ceil(math.ceil(train.n_batches(hp.batch_size) / world) / accum)
        warmup = int(hp.warmup_ratio * total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
        rng = random.Random(cfg.train.seed)
        raw_model = model  # saved and evaluated; `model` becomes the DDP wrapper with several processes
        model, optimizer = accelerator.prepare(model, optimizer)  # optimizer: fp16 loss scaling, skipped inf steps
        if world > 1:  # DDP has broadcast rank 0's weights; give each process its own dropout (and MLM) masks
            torch.manual_seed(cfg.train.seed + accelerator.process_index)
            np.random.seed(cfg.train.seed + accelerator.process_index)
        state = {"metric": task.metric, "best_dev": -1.0, "best_step": 0, "bad_evals": 0, "step": 0, "history": []}
        resume = ResumePoint(save_dir.with_name(save_dir.name + ".resume"), run_fingerprint(cfg, hp, splits, teacher_logits))
        if self.resume and (done := resume.finished_run(save_dir)) is not None:
            print(f"resume: {name} already finished ({save_dir / 'train_log.json'}); not training it again")
            return done
        first_epoch = resume.begin(self.resume, raw_model, optimizer, scheduler, rng, state, extra, writer=self.is_main)
        start_run(accelerator, name)  # train.report_to: this model's tracker run (a no-op for none)
        for group in optimizer.param_groups:  # a resume state from another device must not switch `fused`
            group["fused"] = fused or None
        saver = BackgroundSaver(name)

        def evaluate_dev(epoch: int) -> bool:
            """Evaluate on dev, save if best; return True when early stopping triggers."""
            t0 = time.perf_counter()
            acc = task.dev_score(self, raw_model, dev, splits.labels, hp.batch_size * 2)
            improved = acc > state["best_dev"]
            state["history"].append({"epoch": epoch, "step": state["step"], "dev": acc})
            if improved:
                state.update(best_dev=acc, best_step=state["step"], bad_evals=0)
                if self.is_main:  # written in the background while training goes on
                    saver.save(raw_model, tokenizer, splits.labels, save_dir, state)
            else:
                state["bad_evals"] += 1
            note = " (best, saved)" if improved else " (best %.4f)" % state["best_dev"]
            print(f"{name} epoch {epoch} step {state['step']}: dev {task.metric} {acc:.4f}{note} "
                  f"[{time.perf_counter() - t0:.1f}s]")
            accelerator.log({f"dev/{task.metric.replace(' ', '_')}": acc}, step=state["step"])
            model.train()
            return state["bad_evals"] >= cfg.train.patience

        def load_batch(index: list[int]) -> dict:
            """One batch, collated in the background (prefetch) with its teacher logits; pinned on CUDA so that
            the copies to the device are asynchronous. On CUDA lengths are padded to a multiple of 8."""
            batch = train.collate(np.array(index), pad_to_multiple_of=8 if cuda else None)
            if teacher_logits is not None:  # rows by example index: shuffling-safe (np array or TokenLogits)
                batch["teacher_logits"] = torch.from_numpy(teacher_logits[batch["index"].numpy()])
            return {k: v.pin_memory() for k, v in batch.items()} if cuda else batch

        def to_device(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.device, non_blocking=cuda)

        print(f"{name}: {t_encoded - t_start:.1f}s tokenising {len(train)} train + {len(dev)} dev rows, "
              f"{time.perf_counter() - t_encoded:.1f}s setting up (model to {self.device}, optimizer, resume state)")
        stop = False
        for epoch in range(first_epoch, hp.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            seen = 0
            # The loss stays on the device: reading it (.item()) waits for the GPU, so it is read only when shown
            loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            # Every process draws the same seeded batch list and trains on its share; DDP averages the gradients.
            # (Not an accelerate-prepared DataLoader: our batches are length-bucketed lists of example indices,
            # which also index the teacher logits; sharding them ourselves keeps that one code path.)
            batches = shard_batches(train.train_batch_indices(hp.batch_size, rng), accelerator.process_index, world)
            bar = tqdm(total=len(batches), desc=f"{name} epoch {epoch}/{hp.epochs}", disable=None if self.is_main else True)
            # no terminal (a log file, nohup, a cluster job): tqdm is off, so print a line per tenth of the epoch
            log_every = max(1, len(batches) // 10) if bar.disable and self.is_main else 0
            show_every = max(1, min(50, len(batches) // 20))  # the progress bar's loss: a sync, so not every step
            with closing(prefetch(load_batch, batches, self.prefetch_depth())) as loaded:
                for i, batch in enumerate(loaded):
                    # Gradient accumulation: an optimizer step every `accum` batches and at the epoch's last one;
                    # the batches before it skip DDP's gradient all-reduce (no_sync), the loss is averaged over them.
                    window = min(accum, len(batches) - i // accum * accum)
                    step_now = (i + 1) % accum == 0 or i + 1 == len(batches)
                    tl = to_device(batch["teacher_logits"]) if teacher_logits is not None else None
                    labels = to_device(batch["labels"])
                    if hasattr(loss_fn, "start_step"):  # schedules (temperature, weights, Theseus replacement rate)
                        loss_fn.start_step(state["step"], total_steps)
                    inputs = model_inputs(raw_model, batch, self.device, non_blocking=cuda)  # pairs: token types / sides
                    with nullcontext() if step_now else accelerator.no_sync(model):
                        with self._autocast():
                            outputs = model(**inputs, **getattr(loss_fn, "forward_kwargs", {}))  # e.g. output_hidden_states
                        logits = outputs.logits
                        if logits.dim() == 3:  # token classification: only labelled positions count, in row order
                            valid = labels != IGNORE
                            logits, labels = logits[valid], labels[valid]
                        if hasattr(loss_fn, "batch_loss"):  # losses that need more than logits (hidden states, the batch)
                            loss, parts = loss_fn.batch_loss(outputs, inputs, logits, labels, tl)
                        else:
                            loss, parts = loss_fn(logits, labels, tl)
                        accelerator.backward(loss / window)
                    rows = len(batch["index"])  # examples (NER: windows), not tokens
                    seen += rows
                    loss_sum += loss.detach().double() * rows
                    bar.update(1)
                    if (i + 1) % show_every == 0 and not bar.disable:
                        bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", dev=f"{max(state['best_dev'], 0):.4f}")
                    if log_every and (i + 1) % log_every == 0 and i + 1 < len(batches):
                        print(f"{name} epoch {epoch}: batch {i + 1}/{len(batches)}, loss {loss_sum.item() / seen:.4f}, "
                              f"{seen * world / (time.perf_counter() - t0):.0f} examples/s", flush=True)
                    if i == 0 and epoch == first_epoch:
                        print(f"{name}: time to first step {time.perf_counter() - t_start:.1f}s (from fit's start)")
                    if not step_now:
                        continue
                    accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                    if cfg.train.eval_every and state["step"] % cfg.train.eval_every == 0:
                        if evaluate_dev(epoch):
                            stop = True
                            break
            bar.close()
            epoch_seconds = time.perf_counter() - t0
            # all processes' examples: the epoch's loss and speed, as with one process
            totals = torch.stack([loss_sum, torch.tensor(float(seen), dtype=torch.float64, device=self.device)])
            loss_sum, seen = accelerator.reduce(totals, "sum").tolist()
            state["history"].append({"epoch": epoch, "train_loss": loss_sum / max(seen, 1),
                                     "epoch_seconds": round(epoch_seconds, 2)})
            print(f"{name} epoch {epoch}: train loss {loss_sum / max(seen, 1):.4f}, {epoch_seconds:.1f}s "
                  f"({seen / epoch_seconds:.0f} examples/s)")
            accelerator.log({"train_loss": loss_sum / max(seen, 1)}, step=state["step"])
            if stop or evaluate_dev(epoch):
                break
            if self.is_main:  # after every completed epoch: what --resume continues from
                saver.wait()  # the best checkpoint this state records is on disk first
                resume.save(raw_model, optimizer, scheduler, rng, state, next_epoch=epoch + 1, extra=extra)
        t_end = time.perf_counter()
        if self.is_main:
            saver.wait()
            write_json(save_dir / "train_log.json", state)
            resume.clear()
            print(f"{saver.summary()}; {time.perf_counter() - t_end:.1f}s finishing after the last evaluation")
        accelerator.wait_for_everyone()  # the others go on to read the saved checkpoint
        accelerator.free_memory()  # drop the Accelerator's references to this model and optimizer
        return state

    # ------------------------------------------------------------ teacher

    def build_teacher(self):
        """(model, tokenizer) before fine-tuning: teacher.pretrained + a fresh head, or a random BERT (seeded)."""
        cfg, labels = self.cfg, self.splits.labels
        t0 = time.perf_counter()
        seed_everything(cfg.train.seed)  # the classification head's initialisation
        if cfg.teacher.pretrained is None:
            model, tokenizer = build_random_teacher(cfg.teacher, labels, self._vocab_file(), cfg.task)
            print(f"teacher: random BERT ({model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}; "
                  f"{time.perf_counter() - t0:.1f}s)")
        else:
            model, tokenizer = load_pretrained_teacher(cfg.teacher, labels, cfg.task)
            print(f"teacher: {cfg.teacher.pretrained} ({model.num_parameters() / 1e6:.1f}M parameters; loaded in "
                  f"{time.perf_counter() - t0:.1f}s)")
        source = cfg.teacher.pretrained and resolve_pretrained(cfg.teacher.pretrained)
        model = apply_pooling(model, cfg.teacher.pooling, source, cfg.teacher.pretrained or "the random BERT")
        model.config.problem_type = self.task.problem_type  # e.g. multi_label_classification: HF's sigmoid head
        if hasattr(self.task, "init_head"):  # multi-label: the head's bias starts at the label priors
            self.task.init_head(model, self.splits.train)
        return model, tokenizer

    def write_resolved_config(self) -> None:
        """<output_dir>/config.resolved.yaml: this run's config with every default filled in; rerunning from that
        file alone (kdnlp distill --config <it>) repeats the run. Written after preflight() (the CLI and run()
        call it first), so a run refused for bad input writes nothing."""
        if self.is_main:
            write_text(self.out / "config.resolved.yaml", dump_config(self.cfg))

    def train_teacher(self) -> dict | None:
        """Fine-tune the teacher; a given teacher is not trained: teacher.fine_tuned is imported and evaluated,
        teacher.outputs is scored on test where it covers the test texts (else None: no teacher report)."""
        cfg = self.cfg
        self.write_resolved_config()
        if cfg.teacher.fine_tuned is not None:
            self.import_fine_tuned()
            return self.evaluate("teacher")
        if cfg.teacher.outputs is not None:
            return self.outputs_report()
        model, tokenizer = self.build_teacher()
        self.fit(model, tokenizer, self.task.gold_loss, cfg.teacher, self.out / "teacher", "teacher")
        return self.evaluate("teacher")

    # ------------------------------------------------------------ student

    def build_student(self):
        """(model, tokenizer) of the configured student, freshly initialised (seeded)."""
        ctx = StudentContext(labels=self.splits.labels, train_texts=self.all_train_texts(),
                             teacher_tokenizer=self.teacher_tokenizer, fine_tuned_teacher=self.fine_tuned_teacher,
                             has_teacher_model=self.has_teacher_model)
        seed_everything(self.cfg.train.seed)  # the student's initialisation
        model, tokenizer = STUDENTS[self.cfg.student.type](self.cfg, ctx)
        model.config.problem_type = self.task.problem_type
        return model, tokenizer

    def train_student(self) -> dict:
        cfg = self.cfg
        self.write_resolved_config()
        loss_fn = self.task.distill_loss(cfg.distill)
        teacher_logits, train_examples = None, None
        if loss_fn.needs_teacher:
            teacher_logits = self.teacher_logits("train")
            if cfg.augment.enabled:  # originals get alpha*CE + T*D, augmented rows T*D only (label IGNORE)
                augmented, aug_logits = self._augmented()
                train_examples = list(self.splits.train) + augmented
                teacher_logits = np.concatenate([teacher_logits, aug_logits])
                print(f"transfer set: {len(self.splits.train)} originals + {len(augmented)} augmented examples")
        else:
            print("student alone: distill.T = 0, so no teacher logits are computed or used"
                  + (" (and no augmented examples: they only carry the teacher term)" if cfg.augment.enabled else ""))
        model, tokenizer = self.build_student()
        hp = cfg.student
        print(f"student: {cfg.student.type} ({model.num_parameters() / 1e6:.2f}M parameters), "
              f"loss = {cfg.distill.alpha}*{'BCE' if cfg.task == 'multilabel' else 'CE'} + {cfg.distill.T}*{cfg.distill.loss}"
              + (f" + intermediate ({cfg.distill.intermediate if isinstance(cfg.distill.intermediate, str) else 'list'})"
                 if cfg.distill.intermediate else ""))
        if cfg.distill.intermediate:
            loss_fn = IntermediateDistiller(loss_fn, self.fine_tuned_teacher(), model, cfg.distill.intermediate)
        name = cfg.student.name
        if cfg.student.type in STAGED_TRAINING:  # students with training stages of their own (theseus, fastbert)
            STAGED_TRAINING[cfg.student.type](self, model, tokenizer, loss_fn, teacher_logits, train_examples)
        else:
            self.fit(model, tokenizer, loss_fn, hp, self.out / name, name, teacher_logits, train_examples)
        return self.evaluate(name)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, name: str) -> dict:
        mdir = self.out / name
        model, tokenizer, labels = load_model_dir(mdir, self.cfg.task)
        self._check_labels(labels, mdir)
        model.to(self.device)
        test = self.task.encode(self.splits.test, tokenizer, self.cfg.data.max_length)
        batch_size = 64
        t0 = time.perf_counter()
        logits = self.predict_logits(model, test, batch_size, desc=f"{name} test")
        seconds = time.perf_counter() - t0
        metrics, text = self.task.report(logits, test, labels, model.config)
        print(f"\n{name} on test ({len(self.splits.test)} examples, {seconds:.1f}s):\n{text}\n")
        speed = len(self.splits.test) / seconds
        cpu_speed = speed
        if self.device.type != "cpu" and self.is_main:  # the table compares CPU speed: measure it on a slice of test
            sub = self.task.encode(self.splits.test[:256], tokenizer, self.cfg.data.max_length)
            model.to("cpu")
            t1 = time.perf_counter()
            self.predict_logits(model, sub, batch_size, device=torch.device("cpu"))
            cpu_speed = len(self.splits.test[:256]) / (time.perf_counter() - t1)
        weights = [mdir / w for w in WEIGHT_NAMES if (mdir / w).is_file()]
        report = {**metrics, "model": name, "n_examples": len(self.splits.test), "n_params": model.num_parameters(),
                  "size_bytes": sum(p.stat().st_size for p in weights) or dir_size(mdir),
                  "device": str(self.device), "batch_size": batch_size, "eval_seconds": round(seconds, 3),
                  "examples_per_second": round(speed, 1), "cpu_examples_per_second": round(cpu_speed, 1),
                  "torch_threads": torch.get_num_threads(), "data": {"test": self.cfg.data.test},
                  "processes": self.accelerator.num_processes}
        if self.is_main:
            write_json(mdir / "report.json", report)
        return report

    def preflight(self, command: str = "distill") -> None:
        """Check everything the config fixes before any training (kdnlp/preflight.py); reads, never writes."""
        from .preflight import check
        check(self, command)

    def run(self) -> str:
        self.preflight("distill")
        teacher = self.train_teacher()
        student = self.train_student()
        table = comparison_table(teacher or {}, student)
        if self.is_main:
            write_text(self.out / "comparison.md", table + "\n")
        test = self.cfg.data.test or f"the test split of {self.cfg.data.train}"
        print(f"\nTeacher vs student on test ({test}):\n{table}\n")
        if self.is_main:
            from .plot import plot_after_run
            plot_after_run(self.out)  # curves.png, when matplotlib is installed
        return table
