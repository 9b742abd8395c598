#!/usr/bin/env bash
# The word-level BiLSTM tagger against today's word-piece BiLSTM, from ONE MiniLM teacher and ONE logit cache, on
# the same CoNLL-2003 split (configs/conll03_word.yaml: 3,000 train sentences, full eng.testa = dev, full
# eng.testb = test). The numbers in docs/ner.md ("Word-level tagger"). DATA: the folder with eng.train/testa/testb.
#   saved_dict/conll03_word/{teacher,logits,bilstm,word,word_char,word_char_wd}
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/conll2003}
OUT=${OUT:-saved_dict/conll03_word}
run() { kdnlp "$@" --config configs/conll03_word.yaml --output-dir "$OUT" \
  --set data.train="$DATA/eng.train" --set data.dev="$DATA/eng.testa" --set data.test="$DATA/eng.testb"; }
uptime
run train-teacher                                   # MiniLM, 2 epochs
run cache-logits                                    # the one cache every student reads
# today's tagger: a BiLSTM over the teacher's word pieces, its embeddings from the teacher's (as conll03_bilstm.yaml)
run train-student --set student.type=bilstm --set student.name=bilstm
run train-student                                   # word_bilstm: whole words, no characters
run train-student --set student.name=word_char --set student.char_dim=50   # + a character CNN
run train-student --set student.name=word_char_wd --set student.char_dim=50 --set student.word_dropout=0.1  # + [UNK] trained
uptime
python benchmarks/summarize.py "$OUT"
OMP_NUM_THREADS=1 python benchmarks/ner_predict_speed.py "$DATA/eng.testb" "$OUT"/{teacher,bilstm,word,word_char,word_char_wd}
