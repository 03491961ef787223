"""Generic image datasets: class folders, JSONL image-caption pairs, webdataset shards.

Items are dicts; an unreadable image gives ``None`` (plus one warning naming it) so
that ``collate_skip_corrupt`` drops and counts it instead of crashing the run. Random
transforms get a seed derived from (seed, epoch, index): a run resumed mid-epoch sees
the same augmentations. ``set_epoch`` must be called before the epoch's DataLoader
iterator is created (workers copy the dataset then; ``persistent_workers`` would keep
an old epoch).
"""
import hashlib
import io
import json
import logging
import os
import random
import re
import tarfile

import torch.distributed as dist
import webdataset
from braceexpand import braceexpand
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from unimm.registry import DATASETS
from unimm.datasets.transforms import build_transform

logger = logging.getLogger('unimm')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')
# webdataset's naming rule: a sample's key is the member path up to the first dot of
# its file name; the rest is the extension ("a/0001.seg.png" -> "a/0001", "seg.png")
_KEY_AND_EXT = re.compile(r'^((?:.*/|)[^.]+)\.([^/]*)$')


def derive_seed(*parts):
    """A stable 64-bit seed from (seed, epoch, index, ...), equal across processes and runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little')


def load_image(source, name):
    """Fully decode an image file or stream; ``None`` and one warning if it cannot be read."""
    try:
        with Image.open(source) as img:
            img.load()
            return img
    except Exception as err:  # any decoder failure means "corrupt", never a crash
        logger.warning('skipping unreadable image %s (%s: %s)', name, type(err).__name__,
                       str(err).splitlines()[0] if str(err) else '')
        return None


class _MapDataset(Dataset):
    """Shared part of the map-style datasets: (path, target) records, seeded transform.
    An item is dict(image, <TARGET_KEY>=target, path)."""

    TARGET_KEY = None

    def __init__(self, transform, seed):
        self.transform = build_transform(transform)
        self.seed = seed
        self.epoch = 0
        self.records = []

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        path, target = self.records[index]
        img = load_image(path, path)
        if img is None:
            return None
        image = self.transform(img, seed=derive_seed(self.seed, self.epoch, index))
        return {'image': image, self.TARGET_KEY: target, 'path': path}


@DATASETS.register_module()
class ImageFolderDataset(_MapDataset):
    """ImageNet layout ``root/<class_name>/**/<image>``; item dict(image, label, path).

    Labels index ``class_names`` (default: the sorted class folder names), so two
    machines listing the folders in a different order still agree on them.
    """

    TARGET_KEY = 'label'

    def __init__(self, root, transform=None, class_names=None, extensions=IMAGE_EXTENSIONS,
                 seed=0):
        super().__init__(transform, seed)
        if not os.path.isdir(root):
            raise FileNotFoundError(f'image folder {root!r} does not exist; expected the '
                                    'ImageNet layout root/<class_name>/<image>.jpg')
        self.root = root
        self.class_names = list(class_names) if class_names else sorted(
            e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith('.'))
        exts = tuple('.' + e.lower().lstrip('.') for e in extensions)
        for label, name in enumerate(self.class_names):
            class_dir = os.path.join(root, name)
            if not os.path.isdir(class_dir):
                raise FileNotFoundError(f'class folder {class_dir!r} (from class_names) is missing')
            for folder, _, files in sorted(os.walk(class_dir, followlinks=True)):
                self.records += [(os.path.join(folder, f), label)
                                 for f in sorted(files) if f.lower().endswith(exts)]
        if not self.records:
            raise FileNotFoundError(f'no images with extensions {exts} under {root!r}; expected '
                                    'the ImageNet layout root/<class_name>/<image>.jpg')


@DATASETS.register_module()
class ImageTextJsonlDataset(_MapDataset):
    """Image-caption pairs from a JSONL file, one ``{"image": path, "text": caption}``
    object a line; relative image paths start at ``image_root`` (default: the file's
    folder). Item dict(image, text, path). Blank lines are skipped; a malformed line
    fails at construction with its line number."""

    TARGET_KEY = 'text'

    def __init__(self, path, image_root=None, transform=None, image_key='image',
                 text_key='text', seed=0):
        super().__init__(transform, seed)
        image_root = image_root or os.path.dirname(os.path.abspath(path))
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}:{lineno}: malformed JSON ({err.msg} at column '
                                     f'{err.colno})') from err
                if not isinstance(obj, dict) or image_key not in obj or text_key not in obj:
                    raise ValueError(f'{path}:{lineno}: expected an object with keys '
                                     f'{image_key!r} and {text_key!r}, got {line.strip()[:200]}')
                self.records.append((os.path.join(image_root, obj[image_key]), obj[text_key]))


def rank_and_world_size():
    """This process's data-parallel rank and world size: from torch.distributed when it
    is initialised, else the launcher's RANK / WORLD_SIZE variables, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))


def expand_urls(urls):
    """Shard paths from a brace pattern ("s/{000000..000009}.tar") or a list of them."""
    patterns = [urls] if isinstance(urls, str) else list(urls)
    return [url for pattern in patterns for url in braceexpand(pattern)]


def write_shards(samples, pattern, maxcount=10000):
    """Write sample dicts into tar shards named ``pattern % shard_index`` (e.g.
    "out/shard-%06d.tar"), ``maxcount`` samples each; return the shard paths.

    A sample maps extensions to bytes, str, dicts ('json') or PIL images ('jpg',
    'png', encoded by webdataset); ``__key__`` defaults to the sample's running index.
    """
    os.makedirs(os.path.dirname(os.path.abspath(pattern % 0)), exist_ok=True)
    paths, writer = [], None
    for index, sample in enumerate(samples):
        if index % maxcount == 0:
            if writer is not None:
                writer.close()
            paths.append(pattern % len(paths))
            writer = webdataset.TarWriter(paths[-1])
        writer.write({'__key__': f'{index:09d}', **sample})
    if writer is not None:
        writer.close()
    return paths


@DATASETS.register_module()
class WebDatasetShards(IterableDataset):
    """Image(-text) samples streamed from webdataset tar shards; item dict(image, text, path).

    Shards are read with ``tarfile`` (webdataset's own pipeline drops samples a map
    returns ``None`` for, and keeps its epoch inside worker copies). Each epoch the
    shard list is split over (rank, DataLoader worker) pairs; with fewer shards than
    pairs, the pairs sharing a shard take every k-th sample of it, so every sample is
    read exactly once per epoch either way. With ``shuffle_buffer > 0`` the shard order
    is shuffled by (seed, epoch) and samples pass through a shuffle buffer of that size.
    ``text`` is the first of ``text_keys`` present ('' if none; for 'json', its
    "caption" or "text" field). Rank and world size are read at construction
    (DataLoader workers have no process group). Ranks may get unequal sample counts.
    """

    def __init__(self, urls, transform=None, image_keys=('jpg', 'png', 'jpeg', 'webp'),
                 text_keys=('txt', 'caption', 'json'), shuffle_buffer=0, seed=0):
        self.urls = expand_urls(urls)
        if not self.urls:
            raise ValueError(f'no shards in {urls!r}')
        missing = [url for url in self.urls if not os.path.isfile(url)]
        if missing:
            raise FileNotFoundError(f'{len(missing)} of {len(self.urls)} shards are missing, '
                                    f'first: {missing[0]!r}')
        self.transform = build_transform(transform)
        self.image_keys = tuple(image_keys)
        self.text_keys = tuple(text_keys)
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank_and_world_size()

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        info = get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        total, me = self.world_size * num_workers, self.rank * num_workers + worker
        order = list(range(len(self.urls)))
        if self.shuffle_buffer:
            random.Random(derive_seed(self.seed, self.epoch)).shuffle(order)
        samples = self._assigned(order, me, total)
        rng = random.Random(derive_seed(self.seed, self.epoch, 'buffer', me))
        for shard, position, group in self._buffered(samples, rng):
            yield self._decode(group, derive_seed(self.seed, self.epoch, shard, position))

    def _assigned(self, order, me, total):
        """(shard index, position in shard, raw sample) for the samples worker ``me`` owns."""
        if len(order) >= total:
            plan = [(order[i], 1, 0) for i in range(me, len(order), total)]
        else:
            slot = me % len(order)
            plan = [(order[slot], len(range(slot, total, len(order))), me // len(order))]
        for shard, stride, offset in plan:
            for position, group in enumerate(self._read_shard(self.urls[shard])):
                if position % stride == offset:
                    yield shard, position, group

    def _buffered(self, samples, rng):
        """Shuffle a stream through a buffer of ``shuffle_buffer`` raw (undecoded) samples."""
        if not self.shuffle_buffer:
            yield from samples
            return
        buffer = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                i = rng.randrange(len(buffer))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    @staticmethod
    def _read_shard(url):
        """Group a tar's consecutive members that share a key into {ext: bytes} samples.
        A broken tar ends its shard with a warning; samples already read are kept."""
        group = None
        try:
            with tarfile.open(url, 'r|*') as tar:
                for member in tar:
                    match = _KEY_AND_EXT.match(member.name) if member.isfile() else None
                    if match is None:
                        continue
                    if group is None or group['__key__'] != match.group(1):
                        if group is not None:
                            yield group
                        group = {'__key__': match.group(1), '__url__': url}
                    group[match.group(2).lower()] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            logger.warning('shard %s is broken, skipping its rest (%s: %s)', url,
                           type(err).__name__, err)
        if group is not None:
            yield group

    def _decode(self, group, seed):
        name = f"{group['__url__']}#{group['__key__']}"
        image_key = next((k for k in self.image_keys if k in group), None)
        if image_key is None:
            logger.warning('skipping sample %s: no image entry among %s', name, self.image_keys)
            return None
        try:
            text = self._text(group)
        except ValueError as err:  # undecodable bytes or malformed JSON
            logger.warning('skipping sample %s: unreadable text (%s)', name, err)
            return None
        img = load_image(io.BytesIO(group[image_key]), name)
        if img is None:
            return None
        return dict(image=self.transform(img, seed=seed), text=text, path=name)

    def _text(self, group):
        key = next((k for k in self.text_keys if k in group), None)
        if key is None:
            return ''
        if key != 'json':
            return group[key].decode('utf-8')
        meta = json.loads(group[key])
        return meta.get('caption', meta.get('text', '')) if isinstance(meta, dict) else ''
