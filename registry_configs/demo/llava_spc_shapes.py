# The understanding demo on SPC tokens only (the stage-1 tokenizer: semantic features),
# trained exactly like llava_sghc_shapes.py. Needs work_dirs/spc_shapes/export.
_base_ = ['./llava_sghc_shapes.py']
model = dict(vision=dict(tokenizer='work_dirs/spc_shapes/export'))
