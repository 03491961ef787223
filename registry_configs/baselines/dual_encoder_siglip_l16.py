# Dual encoders, Janus style: an LLM reads the continuous features of the frozen
# SigLIP-L/16 tower (understanding); generation uses the pixel VQ of pixel_vq_vitb.py
# (encode / decode), which is the only part trained here.
_base_ = ['./pixel_vq_vitb.py']
model = dict(
    _delete_=True,
    type='DualEncoderTokenizer',
    understanding=dict(type='SemanticEncoder', pretrained='checkpoints/siglip-large-patch16-256',
                       init='teacher', frozen=True),
    generation={{_base_.model}})
