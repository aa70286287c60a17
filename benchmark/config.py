"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

The YAML files under ``configs/`` hold the values; these schemas hold the types, so a
misspelt key or a wrong type fails when Hydra composes the config. Each YAML option
names its schema in its defaults list (``- /schema/<group>/<name>@_here_``).
Defaults live in the YAML, not here: ``--cfg job`` prints the whole truth. A method's schema
lives in its own module (``Method.Config``, :mod:`methods.base`) and is registered from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# ---------------------------------------------------------------- data and views
@dataclass
class AugmentConfig:
    """Per-view (per-clip) augmentation; one parameter draw per view (VDIM sec. 3.1). The values
    are in each method's YAML."""
    crop_size: int = MISSING
    crop: str = "resized"  # resized (random resized crop: crop_area, crop_ratio) | scale_jitter (short side in scale_jitter, then a random square)
    crop_area: List[float] = MISSING
    crop_ratio: List[float] = MISSING
    scale_jitter: List[int] = field(default_factory=lambda: [256, 320])  # crop=scale_jitter: SlowFast's TRAIN_JITTER_SCALES
    order: str = "crop_first"  # crop_first (colour, grey, blur on the crop) | colour_first (on the decoded frames, then the crop: SlowFast's kinetics.py)
    color: str = MISSING  # jitter | lab_dropout | none
    jitter_p: float = MISSING
    brightness: float = MISSING
    contrast: float = MISSING
    saturation: float = MISSING
    hue: float = MISSING
    jitter_impl: str = MISSING  # affine (one 3x3 colour map per clip) | torchvision (ColorJitter)
    grayscale_p: float = MISSING
    grayscale: str = "luma"  # luma (ITU-R 601 grey) | channel (one random RGB channel copied to all three, DPC's RandomGray)
    color_per: str = "clip"  # clip (one jitter and grey draw per clip) | frame (one per frame, DPC's consistent=False)
    blur_p: float = MISSING
    blur_sigma: List[float] = MISSING
    flip_p: float = MISSING
    flip_per: str = "view"  # view (each view draws its flip) | sample (one draw for all views of a sample: AMDIM's flip_lr)
    rotation_degrees: float = MISSING


@dataclass
class VDIMViewConfig:
    """VDIM view generator (sec. 3.1, sec. 4): two subsequences of one window."""
    frames: int = MISSING  # final length of each view after downsampling
    offset: int = 0  # start of the second view relative to the first (0 or 32)
    downsample: List[int] = field(default_factory=lambda: [1, 2])


@dataclass
class RhoClipConfig:
    """rho-clip sampler (Feichtenhofer et al. 2021, sec. 3)."""
    rho: int = 2
    frames: int = MISSING  # T
    stride: int = MISSING  # tau
    max_distance: Optional[int] = None  # max start distance in frames; None = whole video
    sort: Optional[bool] = None  # true: clips in time order (SlowFast's decoder); null/false: in the order drawn
    min_gap: Optional[int] = None  # frames between neighbouring clips, at least (SlowFast DELTA_CLIPS_MIN); null: no bound
    max_gap: Optional[int] = None  # ... at most (DELTA_CLIPS_MAX)


@dataclass
class DatasetConfig:
    name: str = MISSING
    format: str = MISSING  # ucf101 | hmdb51 | kinetics
    root: Optional[str] = None
    videos: Optional[str] = None
    splits: Optional[str] = None
    split: int = 1
    frame_stride: int = 8  # natural temporal stride tau for this data's frame rate
    target_fps: Optional[float] = None  # sample clips as if every video ran at this rate (SlowFast DATA.TARGET_FPS); None: its own
    pretrain_subset: str = "train"  # pretrain on this split's train list only (VDIM sec. 4)


@dataclass
class SyntheticConfig(DatasetConfig):
    cache_dir: Optional[str] = None
    classes: int = 8
    groups: int = 10
    clips_per_group: int = 3
    min_frames: int = 24
    max_frames: int = 64
    size: int = 64
    fps: int = 16
    seed: int = 0


# ---------------------------------------------------------------- encoders
@dataclass
class EncoderConfig:
    name: str = MISSING
    frames: int = MISSING
    size: int = MISSING
    params_reported_m: Optional[float] = None
    gflops_reported: Optional[float] = None


@dataclass
class VDIMEncoderConfig(EncoderConfig):
    layout: str = MISSING  # table1 | small
    ndf: int = 64
    n_1x1: Optional[int] = None  # override every ResBlock's number of 1x1 blocks
    block_bn: bool = True  # BatchNorm inside the blocks; False: Table 1's ConvBlock(5,5,2,2,False), AMDIM's use_bn=0
    head_dim: int = 512  # |Y|, output of phi_8 used as the evaluation feature


@dataclass
class R2D3DEncoderConfig(EncoderConfig):
    depth: int = MISSING  # 18 | 34
    track_running_stats: bool = MISSING  # False: batch statistics also in evaluation (DPC's pretraining)


@dataclass
class PTVEncoderConfig(EncoderConfig):
    pretrained: bool = False  # never downloads: must stay False offline


# ---------------------------------------------------------------- trainer, eval
@dataclass
class TrainerConfig:
    steps: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    optimizer: str = "adam"  # adam | sgd | lars
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False  # SGD and LARS: Nesterov momentum (SlowFast's SOLVER.NESTEROV, True there)
    lars_trust: str = "norm_of_sum"  # norm_of_sum (SimCLR/BYOL) | sum_of_norms (SlowFast's LARS) (benchmark/optim.py)
    bn_weight_decay: Optional[float] = None  # null: weight_decay; else batch norm's own (SlowFast's BN.WEIGHT_DECAY, 0.0)
    schedule: str = "constant"  # constant | cosine | step
    warmup_steps: int = 0
    # SlowFast's schedule in epochs (benchmark/optim.py schedule_in_steps): each, when set, replaces
    # its count in steps, converted with the training list's size and the global batch
    epochs: Optional[float] = None
    warmup_epochs: Optional[float] = None
    warmup_start_lr: Optional[float] = None  # the warm-up's first rate (null: lr / warmup_steps)
    lr_reference_batch: Optional[int] = None  # lr (and warmup_start_lr) are per this many clips of global batch: scaled with it
    decay_every: int = 0
    decay_factor: float = 0.5
    precision: str = "bf16"  # fp32 | bf16 | fp16
    bf16_conv_check: bool = True  # CPU bf16: weight gradients a CPU gets wrong are computed in fp32 (benchmark/bf16_conv_guard.py)
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 2
    threads: Optional[int] = None
    adaptive_threads: bool = True  # CPU: use only the cores other processes leave free (benchmark/cpu_share.py)
    resume: str = "none"  # none | auto | <path to checkpoint>
    checkpoint_every: int = 50
    grad_clip: float = 0.0
    log_every: int = 10
    sync_bn: bool = False
    channels_last: bool = False
    compile: bool = False  # torch.compile the encoder (in place); measured by `perf` (train section)
    augment_on: str = "workers"  # workers | device: colour, grey, blur and normalisation on the model's device
    allocator: str = "retain"  # retain | system: glibc malloc keeps freed memory for reuse (benchmark/allocator.py)
    progress: bool = True


@dataclass
class LinearEvalConfig:
    epochs: int = 100
    lr: float = 0.1
    batch_size: int = 256
    weight_decay: float = 0.0


@dataclass
class FinetuneEvalConfig:
    preset: str = "vdim"  # vdim (sec. 4.1) | rho (Feichtenhofer et al. sec. 5) | dpc (DPC's eval/test.py)
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_every: int = 3000
    decay_factor: float = 0.5
    decay_at: List[int] = field(default_factory=list)  # steps of the decays; empty: every decay_every steps
    schedule: str = "step"  # step (decay_every / decay_at) | cosine | constant
    epochs: Optional[float] = None  # when set, replaces steps: epochs x ceil(training videos / batch_size), per split
    lr_reference_batch: Optional[int] = None  # lr is per this many clips: scaled with batch_size (SlowFast's per-machine rates)
    nesterov: bool = False  # SGD: Nesterov momentum (SlowFast's SOLVER.NESTEROV)
    backbone_lr_scale: float = 1.0  # the encoder's (and DPC's GRU's) rate over the head's
    blocks: int = 8  # dpc: blocks per sample (num_seq)
    window_stride: int = 4  # dpc: test windows' stride in blocks (num_seq // 2 on UCF-101)
    hidden_dim: int = 1024
    dropout: float = 0.2
    head: str = "mlp"  # vdim preset: mlp (linear, ReLU, dropout, linear) | amdim (AMDIM's MLPClassifier: dropout, linear, BN, ReLU, dropout, linear)
    views: int = 4
    grad_clip: float = 0.0
    checkpoint_every: int = 100
    lab_dropout_test: str = "average"  # average | keep_all: test clips with each Lab channel dropped in turn, or none dropped
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # the fine-tuning clips' own augmentation


@dataclass
class KNNEvalConfig:
    recall_at: List[int] = field(default_factory=lambda: [1, 5, 10, 20])
    k: int = 10


@dataclass
class EvalConfig:
    protocols: List[str] = field(default_factory=lambda: ["linear", "knn"])
    splits: List[int] = field(default_factory=lambda: [1, 2, 3])
    dataset: Optional[str] = None  # evaluation dataset (a name in configs/dataset); None = the pretraining dataset
    dataset_root: Optional[str] = None  # its root, when it is not the pretraining dataset
    clips_per_video: int = 4
    frame_stride: int = 1
    target_fps: Optional[float] = None  # the evaluation clips' frame rate (default: dataset.target_fps); None: each video's own
    spatial_crops: int = 1
    test_size: Optional[int] = None  # test clips' short side and crop (SlowFast's TEST_CROP_SIZE); null: encoder.size
    feature_batch_size: int = 32
    bn_batches: int = 50  # an encoder pretrained without BN running statistics gets them from this many batches of training clips (evaluation/batch_norm.py)
    train_examples: Optional[int] = None  # sample sensitivity (evaluation/subsets.py): this many training videos a split, class-balanced
    train_examples_per_class: Optional[int] = None  # ... or this many of each class
    subset_seed: int = 0  # which subset: the same for every method and pretraining seed
    cache_dir: Optional[str] = None
    linear: LinearEvalConfig = field(default_factory=LinearEvalConfig)
    finetune: FinetuneEvalConfig = field(default_factory=FinetuneEvalConfig)
    knn: KNNEvalConfig = field(default_factory=KNNEvalConfig)


# ---------------------------------------------------------------- roots
@dataclass
class RunConfig:
    method: Any = MISSING
    encoder: Any = MISSING
    dataset: Any = MISSING
    eval: EvalConfig = MISSING
    trainer: TrainerConfig = MISSING
    seed: int = 0
    results_dir: str = "results/runs"
    run_id: str = MISSING
    experiment_name: Optional[str] = None
    compute_budget: Optional[str] = None


@dataclass
class InfoConfig:
    encoder: Any = MISSING
    method: Any = MISSING
    batch: int = 1
    flops: bool = True


@dataclass
class DataConfig:
    dataset: Any = MISSING
    out: Optional[str] = None


@dataclass
class PerfConfig:
    encoder: Any = MISSING
    dataset: Any = MISSING
    trainer: TrainerConfig = MISSING
    method: Any = MISSING
    results_dir: str = "results/perf"
    batch_size: int = 8
    repeats: int = 3
    workers: List[int] = field(default_factory=lambda: [0, 2])
    data_batches: int = 4
    sections: List[str] = MISSING  # configs/perf.yaml lists them
    levers: List[str] = field(default_factory=lambda: ["channels_last", "compile", "one_thread", "allocator"])
    paper_resolution: bool = True
    paper_batch: int = 2
    eval_videos: int = 32
    eval_epochs_measured: int = 3
    eval_epochs: int = 100
    scaling_batches: List[int] = field(default_factory=lambda: [8, 16, 32])
    scaling_locations: List[int] = field(default_factory=lambda: [27, 125, 343])
    sharing_steps: int = 40
    dpc_batch: int = 4
    dpc_size: int = 128


def register_schemas() -> None:
    cs = ConfigStore.instance()
    for name, node in {
        "run": RunConfig, "info": InfoConfig, "data": DataConfig, "perf": PerfConfig,
    }.items():
        cs.store(name=f"{name}_schema", node=node)
    groups = {
        "dataset": {"base": DatasetConfig, "synthetic": SyntheticConfig},
        "encoder": {"vdim": VDIMEncoderConfig, "ptv": PTVEncoderConfig, "r2d3d": R2D3DEncoderConfig},
        "trainer": {"base": TrainerConfig},
        "eval": {"base": EvalConfig},
    }
    from methods import METHODS  # each method's own schema, from its own file
    groups["method"] = {name: cls.Config for name, cls in METHODS.items()}
    for group, nodes in groups.items():
        for name, node in nodes.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
