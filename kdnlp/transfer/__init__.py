"""Unlabelled in-domain text as the transfer set (data.unlabeled; docs/unlabeled.md).

    sources.py     the files and globs, read as a stream of rows; deduplication against dev/test
    shards.py      the on-disk store: atomic shards of texts + teacher logits, a manifest, memory-mapped reads
    cache_pass.py  the streamed, resumable, multi-process labelling pass
    mixed.py       the student's train split: labelled rows + the pile, streamed batch by batch
    steps.py       the distill run's use of all of the above (preflight, the pass, the transfer set)
"""
