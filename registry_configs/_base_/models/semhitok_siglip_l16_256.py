# SemHiTok as in the paper: SigLIP-L/16 at 256 px (16x16 = 256 tokens), K = 16384 semantic
# codes, m = 12 sub-codes each (196,608 global ids). Put the SigLIP folder (e.g. a copy of
# google/siglip-large-patch16-256) at _teacher; nothing is downloaded.
_teacher = 'checkpoints/siglip-large-patch16-256'
model = dict(
    type='SemHiTok',
    stage='spc',
    semantic_encoder=dict(type='SemanticEncoder', pretrained=_teacher, init='teacher',
                          frozen=True),
    semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=16384, dim=32,
                            decay=0.99, kmeans_init=True, dead_code_threshold=1.0),
    semantic_decoder=dict(type='SemanticDecoder', in_dim=32, width=1024, depth=3,
                          num_heads=16, out_dim=1024, num_tokens=256),
)
