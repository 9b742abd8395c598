"""Trainer: the one training loop, used for the teacher and for every student, and the order of the steps.

    train_teacher()         fine-tune the teacher, select on dev, save <out>/teacher, report on test
                            (a given teacher — teacher.fine_tuned / teacher.outputs — is not trained)
    cache_teacher_logits()  run the saved teacher once over train -> <out>/logits/train.npy (+ manifest)
    transfer_set()          augment.enabled: Tang et al.'s augmented texts -> <out>/augment/ (labelled via the cache)
    train_student()         alpha * CE + T * D(student, cached teacher logits) -> <out>/student, report on test
    evaluate(name)          test report for <out>/<name>
    run()                   preflight checks, all of the above, then the teacher-vs-student table

The teacher sources, the logit cache and the transfer set live in kdnlp/pipeline.py (PipelineSteps, inherited);
batched inference (predict_logits) in kdnlp/inference.py (Inference, inherited); the optimizer, the schedule, the
accumulation arithmetic and the running loss that fit uses in kdnlp/loop.py.
"""
from __future__ import annotations

import random
import time
from contextlib import closing, nullcontext
from pathlib import Path

import numpy as np
import torch

from .card import write_card
from .checkpoint import ResumePoint, run_fingerprint
from .config import Config, dump_config
from .data import Splits, model_inputs, prefetch
from .distributed import make_accelerator, shard_batches
from .errors import UserError
from .fileio import dir_size, write_json, write_text
from .inference import Inference
from .intermediate import IntermediateDistiller
from .loop import (EpochProgress, RunningLoss, accumulation, labelled_positions, linear_schedule, make_optimizer,
                   optimizer_steps, pick_device, seed_everything)  # pick_device: also imported from here (kdnlp.trainer.pick_device)
from .modeldir import LABELS_FILE, WEIGHT_NAMES, BackgroundSaver, load_model_dir
from .ner import TokenLogits, realign_word_logits
from .pairs import input_kind, record_input
from .pipeline import PipelineSteps
from .report import comparison_table
from .students import STAGED_TRAINING, STUDENTS, StudentContext
from .tasks import TASKS
from .pooling import apply_pooling
from .teacher import build_random_teacher, load_pretrained_teacher, resolve_pretrained
from .tracking import start_run, tracker_kwargs


class Trainer(Inference, PipelineSteps):
    """One run's config, device and data; fit() is the training loop, the rest is the order of the steps."""

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
        kind = input_kind(model)  # sentence pairs: tokenised once, jointly or per side, as this model reads them
        train, dev = (x.encode(task, tokenizer, cfg.data.max_length, kind) if hasattr(x, "encode")  # data.unlabeled:
                      else task.encode(x, tokenizer, cfg.data.max_length, kind)  # a streamed transfer set
                      for x in (train_examples or splits.train, splits.dev))
        record_input(model, getattr(train, "pairs", False), cfg.data.max_length)  # config.json: what predict gives it
        if isinstance(teacher_logits, TokenLogits):  # NER: the cache's word rows, cut into this student's windows
            teacher_logits = realign_word_logits(teacher_logits, train)
        t_encoded = time.perf_counter()
        cuda = self.device.type == "cuda"
        model.to(self.device)
        extra = getattr(loss_fn, "extra_module", None)  # loss-side parameters: trained here, resumed, never saved
        optimizer, fused = make_optimizer(model, hp, extra, self.device)
        accelerator, accum = self.accelerator, cfg.train.grad_accum
        world = accelerator.num_processes
        total_steps = optimizer_steps(train.n_batches(hp.batch_size), hp.epochs, world, accum)
        scheduler = linear_schedule(optimizer, total_steps, warmup=int(hp.warmup_ratio * total_steps))
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
        saver = BackgroundSaver(name, card=lambda path: write_card(path, self.cfg))  # a card from the first save on

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

        def batch_loss(batch: dict) -> tuple[torch.Tensor, dict]:
            """The forward pass and the loss of one batch: (loss, its parts as detached device tensors)."""
            inputs = model_inputs(raw_model, batch, self.device, non_blocking=cuda)  # pairs: token types / sides
            tl = batch["teacher_logits"].to(self.device, non_blocking=cuda) if teacher_logits is not None else None
            with self._autocast():
                outputs = model(**inputs, **getattr(loss_fn, "forward_kwargs", {}))  # e.g. output_hidden_states
            logits, labels = outputs.logits, batch["labels"]
            if logits.dim() == 3:  # token classification, masked LM: only labelled positions count, in row order
                logits, labels = labelled_positions(logits, labels)
            labels = labels.to(self.device, non_blocking=cuda)
            if hasattr(loss_fn, "batch_loss"):  # losses that need more than logits (hidden states, the batch)
                return loss_fn.batch_loss(outputs, inputs, logits, labels, tl)
            return loss_fn(logits, labels, tl)

        print(f"{name}: {t_encoded - t_start:.1f}s tokenising {len(train)} train + {len(dev)} dev rows, "
              f"{time.perf_counter() - t_encoded:.1f}s setting up (model to {self.device}, optimizer, resume state)")
        stop = False
        for epoch in range(first_epoch, hp.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            running = RunningLoss(self.device)  # the loss stays on the device, read at the log interval only
            # Every process draws the same seeded batch list and trains on its share; DDP averages the gradients.
            # (Not an accelerate-prepared DataLoader: our batches are length-bucketed lists of example indices,
            # which also index the teacher logits; sharding them ourselves keeps that one code path.)
            batches = shard_batches(train.train_batch_indices(hp.batch_size, rng), accelerator.process_index, world)
            progress = EpochProgress(name, epoch, hp.epochs, len(batches), self.is_main, world)
            with closing(prefetch(load_batch, batches, self.prefetch_depth())) as loaded:
                for i, batch in enumerate(loaded):
                    # an optimizer step every `accum` batches and at the epoch's last one; the batches before it
                    # skip DDP's gradient all-reduce (no_sync)
                    group_size, step_now = accumulation(i, len(batches), accum)
                    if hasattr(loss_fn, "start_step"):  # schedules (temperature, weights, Theseus replacement rate)
                        loss_fn.start_step(state["step"], total_steps)
                    with nullcontext() if step_now else accelerator.no_sync(model):
                        loss, parts = batch_loss(batch)
                        accelerator.backward(loss / group_size)
                    running.add(loss, parts, rows=len(batch["index"]))
                    progress.update(i, running, state["best_dev"], time.perf_counter() - t0)
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
            progress.close()
            epoch_seconds = time.perf_counter() - t0
            # all processes' examples: the epoch's loss and speed, as with one process; the one read of the epoch
            train_loss, seen, parts = running.totals(accelerator)
            state["history"].append({"epoch": epoch, "train_loss": train_loss,
                                     "epoch_seconds": round(epoch_seconds, 2), "train_parts": parts})
            shown = parts if len(parts) > 1 else {}  # ce, mse, ...: a loss of one part is the loss itself
            detail = " (" + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + ")" if shown else ""
            print(f"{name} epoch {epoch}: train loss {train_loss:.4f}{detail}, {epoch_seconds:.1f}s "
                  f"({seen / epoch_seconds:.0f} examples/s)")
            accelerator.log({"train_loss": train_loss, **{f"train/{k}": v for k, v in shown.items()}},
                            step=state["step"])
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
            model, tokenizer = load_pretrained_teacher(cfg.teacher, labels, cfg.task, cfg.data.labels is not None)
            print(f"teacher: {cfg.teacher.pretrained} ({model.num_parameters() / 1e6:.1f}M parameters; loaded in "
                  f"{time.perf_counter() - t0:.1f}s)")
        source = cfg.teacher.pretrained and resolve_pretrained(cfg.teacher.pretrained)
        kept_head = getattr(model, "head_was_kept", False)  # a head kept by name keeps its trained bias too
        model = apply_pooling(model, cfg.teacher.pooling, source, cfg.teacher.pretrained or "the random BERT")
        model.config.problem_type = self.task.problem_type  # e.g. multi_label_classification: HF's sigmoid head
        if hasattr(self.task, "init_head") and not kept_head:  # multi-label: a fresh head's bias starts at the priors
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
            if cfg.data.unlabeled:  # the pile, labelled once in shards, streamed to fit (kdnlp/transfer/)
                from .transfer.steps import with_pile
                train_examples, teacher_logits = with_pile(self, train_examples or list(self.splits.train), teacher_logits)
        else:
            print("student alone: distill.T = 0, so no teacher logits are computed or used"
                  + (" (and no augmented or data.unlabeled rows: they only carry the teacher term)"
                     if cfg.augment.enabled or cfg.data.unlabeled else ""))
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
        test = self.task.encode(self.splits.test, tokenizer, self.cfg.data.max_length, input_kind(model))
        batch_size = 64
        t0 = time.perf_counter()
        logits = self.predict_logits(model, test, batch_size, desc=f"{name} test")
        seconds = time.perf_counter() - t0
        metrics, text = self.task.report(logits, test, labels, model.config)
        print(f"\n{name} on test ({len(self.splits.test)} examples, {seconds:.1f}s):\n{text}\n")
        speed = len(self.splits.test) / seconds
        cpu_speed = speed
        if self.device.type != "cpu" and self.is_main:  # the table compares CPU speed: measure it on a slice of test
            sub = self.task.encode(self.splits.test[:256], tokenizer, self.cfg.data.max_length, input_kind(model))
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
            write_card(mdir, self.cfg)  # the model card again, now with these test metrics
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
