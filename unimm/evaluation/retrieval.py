"""Image<->text retrieval accuracy of a text-aligned encoder on held-out pairs."""
import torch

from unimm.datasets.collate import collate_skip_corrupt
from unimm.registry import DATASETS, METRICS


@METRICS.register_module()
class RetrievalEvaluator:
    """Top-1 retrieval among all held-out captions; a hit is any caption with the same text
    (scenes can share a caption), and chance is reported the same way."""

    def __init__(self, dataset, batch_size=64):
        self.dataset = DATASETS.build(dataset)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, model, work_dir=None):
        device = next(model.parameters()).device
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size,
                                             collate_fn=collate_skip_corrupt)
        img, txt, texts = [], [], []
        for batch in loader:
            img.append(model.embed_images(batch['image'].to(device)).float().cpu())
            txt.append(model.embed_texts(batch['text']).float().cpu())
            texts += batch['text']
        img, txt = torch.cat(img), torch.cat(txt)
        sim = img @ txt.T
        ids = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        label = torch.tensor([ids[t] for t in texts])
        same = label[:, None] == label[None, :]
        i2t = same[torch.arange(len(texts)), sim.argmax(1)].float().mean().item()
        t2i = same[sim.argmax(0), torch.arange(len(texts))].float().mean().item()
        chance = same.float().mean().item()
        return {'image_to_text_top1': i2t, 'text_to_image_top1': t2i, 'chance': chance,
                'num_pairs': len(texts)}
