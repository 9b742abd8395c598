#!/usr/bin/env bash
# Regenerates the SST-2 augmentation rows of the README (issue 5): BiLSTM student on a Tang et al. transfer set vs
# the same BiLSTM alone (and distilled without augmentation), 3 seeds each, the same 5,000 originals for every arm.
# Needs the fine-tuned MiniLM teacher of benchmarks/sst2.sh (saved_dict/sst2/teacher); it is reused, not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
CFG=configs/sst2_augment.yaml
OUT=saved_dict/sst2_augment
test -f saved_dict/sst2/teacher/config.json || kdnlp train-teacher --config configs/sst2.yaml
mkdir -p $OUT && ln -sfn ../sst2/teacher $OUT/teacher
kdnlp augment --config $CFG --show 10                       # build (timed) and show the transfer set
kdnlp cache-logits --config $CFG                             # teacher logits for the 5,000 originals
for seed in 1 2 3; do
  kdnlp train-student --config $CFG --seed $seed --set student.name=bilstm_aug2ep_s$seed           # KD + transfer set
  kdnlp train-student --config $CFG --seed $seed --epochs 1 --set student.name=bilstm_aug_s$seed  # the same, 1 epoch
  kdnlp train-student --config $CFG --seed $seed --alpha 1 --T 0 --epochs 6 --set student.name=bilstm_alone_s$seed
done
for seed in 1 2 3; do  # ablation: distillation on the originals only
  kdnlp train-student --config $CFG --seed $seed --epochs 6 --set augment.enabled=false --set student.name=bilstm_kd_s$seed
done
python benchmarks/summarize.py $OUT
