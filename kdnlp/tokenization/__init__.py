"""Text -> ids for the students that do not read a transformers tokenizer, in pure Python + numpy (no torch):
training builds and saves them, and the serving runtime (kdnlp/runtime) loads them without torch.

    words.py   WordTokenizer: the BiLSTM's word vocabulary (jieba words for Chinese)
    static.py  StaticTokenizer: the static student's words or WordPiece ids + hashed n-grams
and is_chinese, the one test of "this text is Chinese" (training, augmentation, the runtime's NER word split).
"""
import re

_CJK = re.compile(r"[\u4e00-\u9fff]")


def is_chinese(text: str) -> bool:
    return _CJK.search(text) is not None
