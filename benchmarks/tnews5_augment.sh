#!/usr/bin/env bash
# Regenerates the TNEWS-5 augmentation rows of the README (issue 5): a from-scratch Chinese teacher (no pretrained
# Chinese weights offline), then the BiLSTM on a Tang et al. transfer set vs alone vs distilled without augmentation.
# data/tnews5 = the seed project's TNEWS subset (../shared/data/tnews5 in this workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
test -e data/tnews5 || ln -s ../../shared/data/tnews5 data/tnews5
CFG=configs/tnews5_augment.yaml
OUT=saved_dict/tnews5_augment
kdnlp train-teacher --config $CFG
kdnlp augment --config $CFG --show 10
seed=1
kdnlp train-student --config $CFG --seed $seed --set student.name=bilstm_aug_s$seed
kdnlp train-student --config $CFG --seed $seed --alpha 1 --T 0 --epochs 6 --set student.name=bilstm_alone_s$seed
kdnlp train-student --config $CFG --seed $seed --epochs 6 --set augment.enabled=false --set student.name=bilstm_kd_s$seed
python benchmarks/summarize.py $OUT
