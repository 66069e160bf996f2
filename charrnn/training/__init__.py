"""Training a model: the loop and what surrounds it.

    config.py       TrainConfig: what a run is asked to do
    runs.py         new_run / resume_run: a run directory's policies around the loop
    loop.py         Trainer: truncated BPTT steps, evaluation, checkpoints
    schedule.py     warm-up and cosine decay, by steps or by time
    distributed.py  torchrun / DDP
    advice.py       notes when validation loss keeps rising
    memory.py       keeping freed memory for the next step (glibc)

Nothing is imported here, so that reading a checkpoint (which needs only
config.py) never loads the trainer.
"""
