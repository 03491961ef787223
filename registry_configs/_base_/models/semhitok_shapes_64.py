# SemHiTok at shapes-world scale: the stage-0 teacher (64 px, 8x8 patches -> 64 tokens),
# K = 256 semantic codes, m = 12 sub-codes each (3,072 global ids).
_teacher = 'work_dirs/shapes_siglip/export'
model = dict(
    type='SemHiTok',
    stage='spc',
    semantic_encoder=dict(type='SemanticEncoder', pretrained=_teacher),
    semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=256, dim=16, decay=0.99,
                            kmeans_init=True, dead_code_threshold=0.5),
    semantic_decoder=dict(type='SemanticDecoder', in_dim=16, width=96, depth=2, num_heads=4,
                          out_dim=96, num_tokens=64),
)
