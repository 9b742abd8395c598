"""Accuracy of a saved sequence classifier on a GLUE-style TSV, with transformers alone (no kdnlp).
    python benchmarks/hf_accuracy.py MODEL_DIR data/sst2/dev.tsv"""
import csv, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok, model = AutoTokenizer.from_pretrained(sys.argv[1]), AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
rows = [(r[0].strip(), int(r[1])) for r in list(csv.reader(open(sys.argv[2], encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]]
gold_name = {0: "negative", 1: "positive"}
with torch.no_grad():
    pred = [model.config.id2label[int(model(**tok(t, truncation=True, max_length=64, return_tensors="pt")).logits.argmax())] for t, _ in rows]
print(f"accuracy {sum(p == gold_name[y] for p, (_, y) in zip(pred, rows)) / len(rows):.4f} on {len(rows)} rows of {sys.argv[2]}")
