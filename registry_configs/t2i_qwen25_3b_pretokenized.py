# The same recipe on pre-tokenised shards (the fast path: the tokenizer never runs while
# training). Write them first:
#   python tools/pretokenize.py registry_configs/t2i_qwen25_3b.py --out data/t2i/tokens
_base_ = ['./t2i_qwen25_3b.py']
train_dataloader = dict(
    num_workers=4,
    dataset=dict(_delete_=True, type='PretokenizedT2IShards', urls='data/t2i/tokens',
                 shuffle_buffer=5000))
