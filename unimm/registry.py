"""unimm's registries: mmengine child registries whose ``locations`` import the
modules that register into them, so a config builds without manual imports."""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

from unimm.utils.build import build_checked

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='unimm', build_func=build_checked,
                  locations=['unimm.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='unimm', build_func=build_checked,
                    locations=['unimm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='unimm',
                      build_func=build_checked, locations=['unimm.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='unimm', build_func=build_checked,
                   locations=['unimm.evaluation'])

ALL_REGISTRIES = (MODELS, DATASETS, TRANSFORMS, METRICS)
