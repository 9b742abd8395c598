"""Text -> ids for the students that do not read a transformers tokenizer, in pure Python + numpy (no torch):
training builds and saves them, and the serving runtime (kdnlp/runtime) loads them without torch.

    words.py   WordTokenizer: the BiLSTM's word vocabulary (jieba words for Chinese)
    static.py  StaticTokenizer: the static student's words or WordPiece ids + hashed n-grams
"""
