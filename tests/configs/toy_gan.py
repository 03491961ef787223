_base_ = ['./toy_regression.py']
model = dict(_delete_=True, type='ToyGenerator', dim=8)
discriminator = dict(type='ToyDiscriminator', dim=9)
disc_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0))
