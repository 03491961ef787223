"""The generic data layer: transforms, folder / JSONL / shard datasets, corrupt-skipping collate."""
import json
import logging

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tests.runs import gradient, jpeg_bytes, solid, write_corrupt
from unimm.datasets.collate import collate_skip_corrupt
from unimm.datasets.image_datasets import (ImageFolderDataset, ImageTextJsonlDataset,
                                           WebDatasetShards, write_shards)
from unimm.datasets.transforms import ImageTransform
from unimm.registry import DATASETS
from unimm.utils.build import ConfigError

SIZE = 16


def expected(colour):
    """The [-1, 1] value of each channel of a solid colour."""
    return torch.tensor(colour, dtype=torch.float32).div(127.5).sub(1)


def drain(dataset, batch_size=3, num_workers=0):
    """All items and the skipped count that a DataLoader with the skipping collate yields."""
    items, skipped = [], 0
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=collate_skip_corrupt)
    for batch in loader:
        skipped += batch.pop('num_skipped')
        if batch:
            keys = list(batch)
            items += [{k: batch[k][i] for k in keys} for i in range(len(batch['path']))]
    return items, skipped


# transforms

@pytest.mark.parametrize('crop, shape', [('center', (3, 32, 32)), ('random', (3, 32, 32)),
                                         ('none', (3, 32, 64))])
def test_shorter_side_resize_for_non_square(crop, shape):
    assert ImageTransform(size=32, crop=crop)(gradient(200, 100), seed=0).shape == shape
    portrait = ImageTransform(size=32, crop=crop)(gradient(100, 200), seed=0)
    assert portrait.shape == (shape[0], shape[2], shape[1])


def test_stretch_resize_and_value_range():
    out = ImageTransform(size=32, resize='stretch')(gradient(200, 50))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert -1 <= out.min() and out.max() <= 1


def test_solid_colour_and_modes_map_to_expected_values():
    out = ImageTransform(size=SIZE)(solid((255, 0, 51), (50, 30)))
    assert torch.allclose(out, expected((255, 0, 51))[:, None, None].expand_as(out), atol=1e-6)
    grey = ImageTransform(size=SIZE)(Image.new('L', (20, 20), 0))
    assert grey.shape == (3, SIZE, SIZE) and torch.all(grey == -1)
    transparent = ImageTransform(size=SIZE)(Image.new('RGBA', (20, 20), (0, 0, 0, 0)))
    assert torch.all(transparent == 1)  # composited on white


def test_random_flip_and_crop_are_reproducible_per_seed():
    transform = ImageTransform(size=32, crop='random', random_flip=True)
    img = gradient(64, 48)
    assert all(torch.equal(transform(img, seed=s), transform(img, seed=s)) for s in range(10))
    outs = [transform(img, seed=s) for s in range(10)]
    assert len({o.sum().item() for o in outs}) > 1
    flip = ImageTransform(size=32, random_flip=True)
    plain = ImageTransform(size=32)(img)
    flips = [torch.equal(flip(img, seed=s), plain.flip(-1)) for s in range(20)]
    unflipped = [torch.equal(flip(img, seed=s), plain) for s in range(20)]
    assert all(a or b for a, b in zip(flips, unflipped)) and any(flips) and any(unflipped)


def test_invalid_transform_options_fail_clearly():
    with pytest.raises(ValueError, match='crop must be one of'):
        ImageTransform(crop='middle')
    with pytest.raises(ValueError, match='resize must be one of'):
        ImageTransform(resize='longer')


# collate

def test_collate_drops_and_counts_none():
    item = dict(image=torch.zeros(3, 2, 2), text='a', path='p')
    batch = collate_skip_corrupt([None, item, item, None])
    assert batch['num_skipped'] == 2 and batch['image'].shape == (2, 3, 2, 2)
    assert batch['text'] == ['a', 'a']
    assert collate_skip_corrupt([None, None]) == {'num_skipped': 2}


# image folders

COLOURS = {'b_dog': (0, 128, 255), 'a_cat': (255, 255, 0)}


@pytest.fixture
def image_folder(tmp_path):
    for name, colour in COLOURS.items():
        (tmp_path / name / 'nested').mkdir(parents=True)
        for i in range(3):
            solid(colour).save(tmp_path / name / f'{i}.png')
        solid(colour).save(tmp_path / name / 'nested' / 'x.JPG', quality=100)
    (tmp_path / 'a_cat' / 'notes.txt').write_text('ignored: not an image extension')
    return tmp_path, write_corrupt(tmp_path / 'b_dog')


@pytest.mark.parametrize('num_workers', [0, 2])
def test_image_folder_labels_values_and_corrupt_counted(image_folder, num_workers):
    root, corrupt = image_folder
    dataset = ImageFolderDataset(str(root), transform=dict(type='ImageTransform', size=SIZE))
    assert dataset.class_names == ['a_cat', 'b_dog'] and len(dataset) == 10
    items, skipped = drain(dataset, num_workers=num_workers)
    assert skipped == 2 and len(items) == 8
    assert not set(corrupt) & {item['path'] for item in items}
    for item in items:
        name = dataset.class_names[item['label']]
        assert f'/{name}/' in item['path']
        tolerance = 0.03 if item['path'].endswith('.JPG') else 1e-6
        want = expected(COLOURS[name])[:, None, None].expand(3, SIZE, SIZE)
        assert torch.allclose(item['image'], want, atol=tolerance)


def test_corrupt_image_logs_one_warning_with_its_path(image_folder, caplog):
    root, corrupt = image_folder
    dataset = ImageFolderDataset(str(root), transform=dict(type='ImageTransform', size=SIZE))
    index = [path for path, _ in dataset.records].index(corrupt[0])
    with caplog.at_level(logging.WARNING, logger='unimm'):
        assert dataset[index] is None
    assert len(caplog.records) == 1 and corrupt[0] in caplog.records[0].getMessage()


def test_image_folder_explicit_class_names_and_errors(image_folder, tmp_path):
    root, _ = image_folder
    dataset = ImageFolderDataset(str(root), class_names=['b_dog'], extensions=('png',))
    assert {label for _, label in dataset.records} == {0} and len(dataset) == 4  # 3 + fake .png
    with pytest.raises(FileNotFoundError, match='does not exist.*root/<class_name>/'):
        ImageFolderDataset(str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match='zebra'):
        ImageFolderDataset(str(root), class_names=['zebra'])


def test_build_from_config_checks_the_nested_transform(image_folder):
    root, _ = image_folder
    dataset = DATASETS.build(dict(type='ImageFolderDataset', root=str(root),
                                  transform=dict(type='ImageTransform', size=8)))
    assert dataset[0]['image'].shape == (3, 8, 8)
    with pytest.raises(ConfigError, match="'sise'.*'size'"):
        DATASETS.build(dict(type='ImageFolderDataset', root=str(root),
                            transform=dict(type='ImageTransform', sise=8)))


def test_map_dataset_augmentations_follow_seed_epoch_and_index(image_folder):
    root, _ = image_folder
    gradient(40, 30).save(root / 'a_cat' / 'g.png')
    transform = dict(type='ImageTransform', size=SIZE, crop='random', random_flip=True)
    dataset = ImageFolderDataset(str(root), transform=transform, seed=3)
    index = [path for path, _ in dataset.records].index(str(root / 'a_cat' / 'g.png'))
    views = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        views.append(dataset[index]['image'])
        assert torch.equal(views[-1], dataset[index]['image'])
    assert any(not torch.equal(views[0], v) for v in views[1:])
    resumed = ImageFolderDataset(str(root), transform=transform, seed=3)
    resumed.set_epoch(2)
    assert torch.equal(resumed[index]['image'], views[2])


# JSONL image-text pairs

def test_jsonl_relative_paths_and_captions_round_trip(tmp_path):
    (tmp_path / 'images').mkdir()
    captions = ['a red square', 'ünïcode "quoted" caption', 'third']
    lines = []
    for i, caption in enumerate(captions):
        solid((i * 100, 0, 0)).save(tmp_path / 'images' / f'{i}.png')
        lines.append(json.dumps({'file': f'images/{i}.png', 'caption': caption}))
    lines.insert(1, '')
    lines.append(json.dumps({'file': 'images/missing.png', 'caption': 'gone'}))
    (tmp_path / 'pairs.jsonl').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    dataset = ImageTextJsonlDataset(str(tmp_path / 'pairs.jsonl'), image_key='file',
                                    text_key='caption',
                                    transform=dict(type='ImageTransform', size=SIZE))
    items, skipped = drain(dataset, batch_size=2)
    assert skipped == 1 and [item['text'] for item in items] == captions
    assert torch.allclose(items[2]['image'][0], torch.full((SIZE, SIZE), 200 / 127.5 - 1))
    other = tmp_path / 'elsewhere.jsonl'
    other.write_text(json.dumps({'image': '0.png', 'text': 'x'}) + '\n')
    rooted = ImageTextJsonlDataset(str(other), image_root=str(tmp_path / 'images'))
    assert rooted[0]['path'] == str(tmp_path / 'images' / '0.png')


def test_jsonl_malformed_line_names_its_number(tmp_path):
    path = tmp_path / 'bad.jsonl'
    path.write_text('{"image": "a.png", "text": "ok"}\n\n{"image": "b.png", "text": }\n')
    with pytest.raises(ValueError, match=r'bad\.jsonl:3: malformed JSON'):
        ImageTextJsonlDataset(str(path))
    path.write_text('{"image": "a.png"}\n')
    with pytest.raises(ValueError, match=r':1: expected an object with keys'):
        ImageTextJsonlDataset(str(path))


# webdataset shards

NUM_SAMPLES = 23
CORRUPT_INDEX = 7


@pytest.fixture
def shard_samples():
    samples = []
    for i in range(NUM_SAMPLES):
        sample = {'__key__': f'sample{i:03d}', 'txt': f'caption {i}'}
        if i == CORRUPT_INDEX:
            sample['jpg'] = b'\xff\xd8\xff not really a jpeg'
        elif i % 2:
            sample['png'] = solid((i * 10, 255 - i * 10, 0))
        else:
            sample['jpg'] = jpeg_bytes(gradient(30, 20))
        samples.append(sample)
    return samples


def good_keys():
    return {f'sample{i:03d}' for i in range(NUM_SAMPLES) if i != CORRUPT_INDEX}


def key_of(item):
    return item['path'].rsplit('#', 1)[1]


def read_as_rank(monkeypatch, rank, world_size, num_workers=0, epoch=0, **kwargs):
    monkeypatch.setenv('RANK', str(rank))
    monkeypatch.setenv('WORLD_SIZE', str(world_size))
    dataset = WebDatasetShards(**kwargs)
    dataset.set_epoch(epoch)
    return drain(dataset, num_workers=num_workers)


@pytest.mark.parametrize('maxcount', [3, 100])  # 8 shards, and fewer shards than readers
def test_shards_split_exactly_once_over_ranks_and_workers(tmp_path, shard_samples, monkeypatch,
                                                          maxcount):
    paths = write_shards(shard_samples, str(tmp_path / 'shards' / 'shard-%06d.tar'), maxcount)
    assert len(paths) == -(-NUM_SAMPLES // maxcount)
    urls = str(tmp_path / 'shards' / f'shard-{{000000..{len(paths) - 1:06d}}}.tar')
    keys, skipped = [], 0
    for rank in range(2):
        items, n = read_as_rank(monkeypatch, rank, 2, num_workers=2, urls=urls,
                                transform=dict(type='ImageTransform', size=SIZE),
                                shuffle_buffer=4)
        keys += [key_of(item) for item in items]
        skipped += n
        for item in items:
            i = int(key_of(item)[6:])
            assert item['text'] == f'caption {i}' and item['image'].shape == (3, SIZE, SIZE)
            if i % 2:
                assert torch.allclose(item['image'][:, 0, 0], expected((i * 10, 255 - i * 10, 0)))
    assert sorted(keys) == sorted(good_keys()) and skipped == 1


def test_shard_order_is_deterministic_per_epoch(tmp_path, shard_samples, monkeypatch):
    paths = write_shards(shard_samples, str(tmp_path / 'shard-%06d.tar'), 5)
    transform = dict(type='ImageTransform', size=SIZE, crop='random', random_flip=True)

    def run(epoch, shuffle_buffer=6):
        items, skipped = read_as_rank(monkeypatch, 0, 1, epoch=epoch, urls=paths,
                                      transform=transform, shuffle_buffer=shuffle_buffer)
        assert skipped == 1
        return [key_of(item) for item in items], torch.stack([item['image'] for item in items])

    order, images = run(epoch=0)
    again, images_again = run(epoch=0)
    other, other_images = run(epoch=1)
    assert order == again and torch.equal(images, images_again)
    assert other != order and sorted(other) == sorted(order) == sorted(good_keys())
    by_key = dict(zip(other, other_images))
    assert any(not torch.equal(image, by_key[key]) for key, image in zip(order, images))
    unshuffled, _ = run(epoch=0, shuffle_buffer=0)
    assert unshuffled == sorted(good_keys())
    # a buffer of one leaves samples in place: only the shard order moves with the epoch
    shard_orders = [run(epoch, shuffle_buffer=1)[0] for epoch in (0, 1)]
    assert shard_orders[0] != shard_orders[1] != unshuffled
    for keys in shard_orders:
        shards = [int(key[6:]) // 5 for key in keys]
        runs = [s for i, s in enumerate(shards) if i == 0 or shards[i - 1] != s]
        assert sorted(runs) == list(range(len(paths)))  # each shard read in one piece
        assert all(a < b for a, b in zip(keys, keys[1:]) if int(a[6:]) // 5 == int(b[6:]) // 5)


def test_shard_text_from_json_and_missing_shard(tmp_path):
    samples = [{'png': solid((1, 2, 3)), 'json': {'caption': 'from json'}},
               {'png': solid((1, 2, 3))}]
    paths = write_shards(samples, str(tmp_path / 's-%02d.tar'), 10)
    items = list(WebDatasetShards(paths, transform=dict(type='ImageTransform', size=SIZE)))
    assert [item['text'] for item in items] == ['from json', '']
    with pytest.raises(FileNotFoundError, match='1 of 2 shards are missing'):
        WebDatasetShards([paths[0], str(tmp_path / 'nope.tar')])


def test_truncated_shard_keeps_its_readable_samples(tmp_path, shard_samples, caplog):
    path, = write_shards(shard_samples[:5], str(tmp_path / 'whole-%02d.tar'), 10)
    data = open(path, 'rb').read()
    broken = tmp_path / 'broken.tar'
    broken.write_bytes(data[:len(data) * 3 // 5])
    dataset = WebDatasetShards([str(broken)], transform=dict(type='ImageTransform', size=SIZE))
    with caplog.at_level(logging.WARNING, logger='unimm'):
        items, skipped = drain(dataset)
    assert 1 <= len(items) < 5 and [key_of(i) for i in items] == sorted(map(key_of, items))
    assert any('broken.tar' in r.getMessage() for r in caplog.records)
