"""Train a small model, then generate from it, stream and score with the Python API.

    python examples/generate.py CORPUS.txt [SECONDS]
"""

import sys

import charlm

corpus = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30
run = charlm.train(data=corpus, cell="lstm", max_time=seconds, hidden_size=64, num_layers=1,
                   embedding_size=16, seq_len=32, batch_size=8, eval_interval=50, progress=False)
m = charlm.load(run.best_path)
print(m.generate("\n", length=100, temperature=0.8, seed=1))
for piece in m.stream("\n", length=50, temperature=0):
    print(piece, end="", flush=True)
print()
print(m.score(open(corpus, encoding="utf-8").read()[:2000]))
