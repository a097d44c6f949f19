#!/usr/bin/env bash
# Where the training process's host time goes: cProfile of `spacetime train` (the world preset, the
# shipped VAE, packed batches of mixed sizes as bench/train_default_gpu.sh trains), with MiniLM's
# architecture and tokenizer at random weights (the same speed). MINILM_DIR: a MiniLM model folder
# of which only the config and tokenizer files are read (a few hundred KB: a lent GPU machine needs
# no weights; default .carry/minilm-shape).
#
#   DEV=cuda B=128 N=40 W=10 bash bench/profile_train.sh [MINILM_DIR]
#
# Prints the last metrics (data_s / encode_s / step_s) and the top functions by own and by
# cumulative time; the profile is left in $OUT/prof.out (or /tmp/profout). Stop 23 found the
# host inside scaled_dot_product_attention this way (docs/benchmarks.md).
set -u
SHAPE=${1:-.carry/minilm-shape}
DEV=${DEV:-cuda}; B=${B:-128}; N=${N:-40}; W=${W:-10}; O=${OUT:-/tmp/profout}; mkdir -p $O
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PYTHONPATH=$PYTHONPATH:bench python3 -c "from pathlib import Path; from train_phases import random_weights_copy; random_weights_copy(Path('$SHAPE'), Path('/tmp/mlr'))"
rm -rf /tmp/prof
timeout 150 python3 -m cProfile -o $O/prof.out -m spacetime train --config configs/dit-world.yaml --device $DEV --run_dir /tmp/prof \
  --vae src/spacetime/models/world/vae --text_encoder /tmp/mlr --batch_size $B --threads 2 --data.num_workers $W \
  --data.multishot 0.15 --log_every 5 --save_every 1000000 --sample_every 0 --max_steps $N \
  --sizes '[[17,64,64],[17,64,64],[9,64,96],[17,96,64],[33,64,64],[17,64,48],[1,64,64]]' > $O/log 2>&1
tail -4 /tmp/prof/metrics.jsonl
python3 -c "import pstats; pstats.Stats('$O/prof.out').sort_stats('tottime').print_stats(22)" | tail -40
python3 -c "import pstats; pstats.Stats('$O/prof.out').sort_stats('cumulative').print_stats(30)" | tail -45
