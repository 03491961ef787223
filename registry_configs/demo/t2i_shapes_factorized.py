# The text-to-image demo with the factorized visual head (beyond the paper): a 256-way
# semantic head, then a 12-way sub-code head conditioned on the chosen semantic code,
# instead of one 3072-way head. Same data and schedule as t2i_shapes.py.
_base_ = ['./t2i_shapes.py']
model = dict(visual_head=dict(_delete_=True, type='FactorizedVisualHead'))
