"""Training logs: a tqdm progress bar, JSON lines and TensorBoard scalars (rank 0)."""
import json
import os
import time

from tqdm import tqdm


class MetricLogger:

    def __init__(self, work_dir, total_steps, initial_step=0, enabled=True, tensorboard=True):
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(work_dir, exist_ok=True)
        self.jsonl = open(os.path.join(work_dir, 'log.jsonl'), 'a')
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(work_dir, 'tensorboard'))
        self.bar = tqdm(total=total_steps, initial=initial_step, dynamic_ncols=True,
                        mininterval=1.0, desc='train')

    def log(self, step, scalars):
        if not self.enabled:
            return
        record = {'step': step, 'time': time.time(), **scalars}
        self.jsonl.write(json.dumps(record) + '\n')
        self.jsonl.flush()
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(f'train/{k}', v, step)
        shown = {k: f'{v:.4g}' for k, v in scalars.items()
                 if k.startswith('loss') or k in ('lr', 'samples_per_s')}
        self.bar.set_postfix(shown, refresh=False)

    def advance(self, n=1):
        if self.enabled:
            self.bar.update(n)

    def message(self, text):
        if self.enabled:
            self.bar.write(text)

    def event(self, step, **fields):
        """A non-scalar record (skipped samples, non-finite steps, checkpoints)."""
        if self.enabled:
            self.jsonl.write(json.dumps({'step': step, 'event': fields}) + '\n')
            self.jsonl.flush()

    def close(self):
        if self.enabled:
            self.bar.close()
            self.jsonl.close()
            if self.writer is not None:
                self.writer.close()
