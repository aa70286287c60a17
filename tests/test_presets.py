"""The paper presets in configs/experiment: each composes with its paper settings, and each
runs one pretraining step end to end through the real CLI on the synthetic videos."""
import json
import math

import pytest
from omegaconf import OmegaConf

from benchmark.trainer import TRAINER_MINIMUMS, check_trainer_numbers
from benchmark.eval_plan import plan_evaluation
from evaluation import EVAL_MINIMUMS

from conftest import ROOT, TINY_OVERRIDES, compose_run
from test_cli import cli, one_line_error

PRESETS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
PAPER = {  # preset: (method, encoder, pretraining dataset, steps (None: in epochs), per-process batch)
    "vdim_ucf101_table2": ("vdim", "vdim", "ucf101", 50000, 64),
    "vdim_k600_table3": ("vdim", "vdim", "kinetics600", 100000, 15),
    "vdim_ablation": ("vdim", "vdim", "ucf101", 50000, 64),
    "rho_simclr_k400": ("rho_simclr", "slow_r50", "kinetics400", None, 8),
    "rho_moco_k400": ("rho_moco", "slow_r50", "kinetics400", None, 8),
    "rho_byol_k400": ("rho_byol", "slow_r50", "kinetics400", None, 8),
    "rho_swav_k400": ("rho_swav", "slow_r50", "kinetics400", None, 8),
    "dpc_ucf101": ("dpc", "r2d3d_18", "ucf101", 45000, 64),
    "dpc_k400": ("dpc", "r2d3d_18", "kinetics400", 562500, 64),
    "maxgl_ucf101": ("maxgl", "r3d_18", "ucf101", 30000, 64),
    "maxgl_k400": ("maxgl", "r3d_18", "kinetics400", 94000, 64),
    "maxgl_ablation": ("maxgl", "r3d_18", "ucf101", 30000, 64),
}


def test_every_preset_is_listed():
    assert PRESETS == sorted(PAPER)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_with_the_paper_settings(name):
    cfg = compose_run([f"experiment={name}", "dataset.root=/data/x"])
    method, encoder, dataset, steps, batch = PAPER[name]
    assert (cfg.method.name, cfg.encoder.name, cfg.dataset.name) == (method, encoder, dataset)
    assert (cfg.trainer.steps if steps else None, cfg.trainer.batch_size) == (steps, batch)
    assert cfg.experiment_name == name and "GPU-hours" in cfg.compute_budget
    check_trainer_numbers(cfg.trainer)  # a preset's counts and rates pass the run's own checks
    if encoder == "vdim":
        assert (cfg.encoder.frames, cfg.encoder.size) == (32, 128)  # Table 1 input
    elif method == "dpc":  # 8 blocks of 5 frames at 128 px; stride 3 on UCF-101, 5 on Kinetics (official code)
        assert (cfg.method.blocks, cfg.method.pred_steps, cfg.encoder.frames, cfg.encoder.size) == (8, 3, 5, 128)
        assert cfg.method.frame_stride == (3 if dataset == "ucf101" else 5) and not cfg.method.track_running_stats
    elif method == "maxgl":  # two 16 x 112 x 112 clips at stride 2 (inferred, methods/maxgl.py)
        assert (cfg.method.clips.frames, cfg.method.clips.stride, cfg.method.clips.rho, cfg.encoder.size) == (16, 2, 2, 112)
    else:
        assert (cfg.method.clips.frames, cfg.method.clips.stride, cfg.method.clips.rho) == (8, 8, 2)  # Slow 8x8


@pytest.mark.parametrize("name", ["dpc_ucf101", "dpc_k400"])
def test_dpc_presets_fine_tune_as_dpc_eval_test_py(name):
    """DPC's eval/test.py (README: --train_what ft --epochs 300 --batch_size 128, 128 px): Adam 1e-3,
    weight decay 1e-3, backbone at lr/10, x0.1 at epochs 60/80/100 of 75 steps, dropout 0.5,
    windows of 8 blocks every 4, colour jitter p 0.3 for the whole sample."""
    cfg = compose_run([f"experiment={name}", "dataset.root=/data/x", "eval.dataset_root=/data/ucf"])
    ft = cfg.eval.finetune
    assert "finetune" in cfg.eval.protocols and list(cfg.eval.splits) == [1, 2, 3]
    assert (ft.preset, ft.optimizer, ft.lr, ft.weight_decay, ft.backbone_lr_scale) == ("dpc", "adam", 1e-3, 1e-3, 0.1)
    assert (ft.batch_size, ft.steps, list(ft.decay_at), ft.decay_factor) == (128, 300 * 75, [60 * 75, 80 * 75, 100 * 75], 0.1)
    assert (ft.dropout, ft.blocks, ft.window_stride, cfg.eval.frame_stride) == (0.5, 8, 4, 3)
    a = ft.augment
    assert (a.color, a.jitter_p, a.hue, a.grayscale_p, a.color_per, list(a.crop_area)) == ("jitter", 0.3, 0.25, 0.0, "clip", [0.5, 1.0])


def test_maxgl_ablation_sweeps_global_local_and_both():
    text = (ROOT / "configs" / "experiment" / "maxgl_ablation.yaml").read_text()
    params = OmegaConf.create(text).hydra.sweeper.params
    assert dict(params) == {"method.terms": "[global],[local],[global,local]"}


def test_table3_fine_tunes_on_ucf101_over_three_splits():
    cfg = compose_run(["experiment=vdim_k600_table3", "dataset.root=/data/k600"])
    assert cfg.eval.dataset == "ucf101" and list(cfg.eval.splits) == [1, 2, 3]
    assert cfg.eval.protocols == ["finetune"] and cfg.eval.finetune.steps == 30000


def test_ablation_sweep_covers_the_section_4_2_axes():
    text = (ROOT / "configs" / "experiment" / "vdim_ablation.yaml").read_text()
    params = OmegaConf.create(text).hydra.sweeper.params
    axes = {"method.antecedent", "method.augment.color", "method.augment.rotation_degrees", "method.views.offset",
            "method.temporal_difference", "method.views.downsample"}
    assert set(params) == axes
    choices = [str(v).split("],[") if str(v).startswith("[") else str(v).split(",") for v in params.values()]
    assert math.prod(len(c) for c in choices) == 144  # the "144 settings" of its compute budget
    antecedents = [a.strip("[]") for a in str(params["method.antecedent"]).split("],[")]
    assert "block8" in antecedents  # J = {8} alone, the setting sec. 4.2 reports nearly 10 points worse


def test_table2_finetunes_with_the_ablations_schedule():
    """Sec. 4.1, item 4: the fine-tuning rate halves every 30000 steps from 1e-3."""
    for name in ("vdim_ucf101_table2", "vdim_ablation"):
        ft = compose_run([f"experiment={name}", "dataset.root=/x"]).eval.finetune
        assert (ft.lr, ft.decay_every, ft.decay_factor, ft.steps, ft.views) == (1e-3, 30000, 0.5, 20000, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_one_step_on_synthetic_videos(name, tmp_path, tiny_dataset):
    """Paper encoder, sampler, optimiser and schedule for one step on real .avi files; the
    evaluation is left out here (test_cli covers it) because it would extract paper-size features."""
    args = ["run", f"experiment={name}", "dataset=synthetic", f"dataset.root={tiny_dataset}", *TINY_OVERRIDES,
            f"results_dir={tmp_path / 'r'}", "trainer.steps=1", "trainer.epochs=null", "trainer.warmup_epochs=null",
            "trainer.sync_bn=false",
            "trainer.batch_size=2", "trainer.warmup_steps=0",
            "trainer.num_workers=0", "trainer.progress=false", "trainer.device=cpu", "eval.protocols=[]", "eval.dataset=null"]
    proc = cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    assert result["experiment"] == name and result["pretrain"]["steps"] == 1
    assert result["pretrain"]["final_loss"] is not None and result["evals"] == []


@pytest.mark.parametrize("method", ["vdim", "rho_simclr", "rho_moco", "rho_byol", "rho_swav"])
def test_synthetic_data_gets_full_hue_jitter_and_whole_actor_crops_and_real_data_the_papers(method):
    """configs/data_augment/<dataset>.yaml adjusts colour strength and crop area by dataset for every method; a dataset
    without one (UCF-101, the paper presets) keeps the method's paper augmentation; the command line wins."""
    paper = OmegaConf.load(ROOT / "configs" / "method" / ("vdim.yaml" if method == "vdim" else "_rho_common.yaml")).augment
    synthetic = compose_run([f"method={method}"]).method.augment
    assert (synthetic.hue, synthetic.grayscale_p) == (0.5, 0.5)
    assert list(synthetic.crop_area) == [0.3, 1.0]  # VDIM's own range; the rho study's 0.2-0.766 cuts the actor
    assert synthetic.brightness == paper.brightness and synthetic.crop_ratio == paper.crop_ratio  # nothing else moves
    for overrides in ([f"method={method}", "dataset=ucf101", "dataset.root=/x"], ["experiment=vdim_ucf101_table2", "dataset.root=/x"]):
        real = compose_run(overrides).method.augment
        want = paper if overrides[0].startswith("method") else OmegaConf.load(ROOT / "configs" / "method" / "vdim.yaml").augment
        assert (real.hue, real.grayscale_p, list(real.crop_area)) == (want.hue, want.grayscale_p, list(want.crop_area))
    assert compose_run([f"method={method}", "method.augment.hue=0.2"]).method.augment.hue == 0.2


def test_rho_swav_small_batch_setting_comes_only_with_the_cpu_trainer():
    """configs/method_trainer/rho_swav_cpu.yaml: Sinkhorn eps and temperature for the CPU default's
    batch of 8; the GPU trainer and the paper preset keep SwAV's (REFERENCE.md: eps 0.05, tau 0.1),
    and the other methods are untouched."""
    cpu = compose_run(["method=rho_swav"])
    assert (cpu.method.sinkhorn_eps, cpu.method.temperature) == (0.01, 0.2)
    assert compose_run(["method=rho_swav", "method.sinkhorn_eps=0.05"]).method.sinkhorn_eps == 0.05  # overrides win
    for args in (["method=rho_swav", "trainer=gpu"], ["experiment=rho_swav_k400", "dataset.root=/data/x"]):
        paper = compose_run(args)
        assert (paper.method.sinkhorn_eps, paper.method.temperature) == (0.05, 0.1), args
    assert compose_run(["method=rho_simclr"]).method.temperature == 0.1


def test_rho_moco_queue_fits_the_synthetic_set_only():
    """configs/method_dataset/rho_moco_synthetic.yaml: a queue under one epoch of split 1's 168 training
    videos (336 keys at rho 2), whatever the trainer; real data and the paper preset keep MoCo's 65536."""
    assert compose_run(["method=rho_moco"]).method.queue_size == 256
    assert compose_run(["method=rho_moco", "trainer=gpu"]).method.queue_size == 256
    assert compose_run(["method=rho_moco", "method.queue_size=512"]).method.queue_size == 512  # overrides win
    for args in (["method=rho_moco", "dataset=ucf101", "dataset.root=/x"], ["experiment=rho_moco_k400", "dataset.root=/data/x"]):
        assert compose_run(args).method.queue_size == 65536, args


@pytest.mark.parametrize("method", ["rho_swav", "rho_byol"])
def test_swav_and_byol_get_a_batch_of_24_on_the_cpu_trainer_only(method):
    """configs/method_trainer/{rho_swav,rho_byol}_cpu.yaml: at 8 clips per batch rho-SwAV stays at the
    uniform Sinkhorn solution and rho-BYOL's features collapse; the other methods keep the CPU
    trainer's 8, the GPU trainer and the paper preset their own batches, and the command line wins."""
    assert compose_run([f"method={method}"]).trainer.batch_size == 24
    assert compose_run([f"method={method}", "trainer.batch_size=8"]).trainer.batch_size == 8
    assert compose_run([f"method={method}", "trainer=gpu"]).trainer.batch_size == 64
    assert compose_run([f"experiment={method}_k400", "dataset.root=/data/x"]).trainer.batch_size == 8


def test_the_other_methods_keep_the_cpu_trainers_batch_of_8():
    for method in ("vdim", "rho_simclr", "rho_moco", "supervised", "random"):
        assert compose_run([f"method={method}"]).trainer.batch_size == 8, method


def test_vdim_gets_its_own_schedule_on_the_cpu_trainer_only():
    """configs/method_trainer/vdim_cpu.yaml: 600 steps, 50 of warm-up, cosine (docs/synthetic.md,
    "How far one run can be trusted"); the GPU trainer, the paper presets, the other methods and
    the command line keep theirs."""
    t = compose_run(["method=vdim"]).trainer
    assert (t.steps, t.schedule, t.warmup_steps) == (600, "cosine", 50)
    assert compose_run(["method=vdim", "trainer.steps=400", "trainer.schedule=constant"]).trainer.schedule == "constant"
    gpu, gpu_default = (compose_run([f"method={m}", "trainer=gpu"]).trainer for m in ("vdim", "rho_simclr"))
    assert (gpu.steps, gpu.schedule, gpu.warmup_steps) == (gpu_default.steps, gpu_default.schedule, gpu_default.warmup_steps)
    paper = compose_run(["experiment=vdim_ucf101_table2", "dataset.root=/data/x"]).trainer
    assert (paper.steps, paper.schedule) == (50000, "constant")  # sec. 4: Adam 2e-4
    for method in ("rho_simclr", "dpc", "maxgl", "random"):
        other = compose_run([f"method={method}"]).trainer
        assert (other.steps, other.schedule, other.warmup_steps) == (400, "constant", 0), method


@pytest.mark.parametrize("key", sorted(TRAINER_MINIMUMS) + ["steps", "lr", "threads"])
@pytest.mark.parametrize("trainer", ["cpu", "gpu"])
def test_trainer_counts_and_rates_below_their_range_fail_in_one_line_naming_them(key, trainer):
    from benchmark.errors import UserError
    cfg = compose_run([f"trainer={trainer}"])
    check_trainer_numbers(cfg.trainer)  # the defaults pass
    least = TRAINER_MINIMUMS.get(key, 1)  # steps and threads: at least 1; lr: above 0
    bad = -0.5 if key == "lr" or isinstance(least, float) else least - 1
    cfg.trainer[key] = bad
    with pytest.raises(UserError, match=rf"^bad trainer\.{key} {bad}: must be (>=|>) "):
        check_trainer_numbers(cfg.trainer)


@pytest.mark.parametrize("key", sorted(EVAL_MINIMUMS) + ["linear.lr", "finetune.lr"])
def test_eval_counts_and_rates_below_their_range_fail_in_one_line_naming_them(key):
    from benchmark.errors import UserError
    cfg = compose_run([])
    plan_evaluation(cfg)  # the defaults pass
    bad = -0.5 if key.endswith("lr") else EVAL_MINIMUMS[key] - 1
    OmegaConf.update(cfg, f"eval.{key}", bad)
    with pytest.raises(UserError, match=rf"^bad eval\.{key} {bad}: must be (>=|>) "):
        plan_evaluation(cfg)


def test_eval_split_numbers_are_checked_before_pretraining_except_kinetics_single_split():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="^unknown split '4'; valid choices: 1, 2, 3$"):
        plan_evaluation(compose_run(["eval.splits=[1,4]"]))
    with pytest.raises(UserError, match="^eval.splits is empty"):
        plan_evaluation(compose_run(["eval.splits=[]"]))
    plan_evaluation(compose_run(["eval.splits=[]", "eval.protocols=[]"]))  # pretraining only
    # Kinetics' single split passes the number check; its lists are read next, before pretraining
    with pytest.raises(UserError, match="^dataset root not found: /data/k400$"):
        plan_evaluation(compose_run(["dataset=kinetics400", "dataset.root=/data/k400", "eval.splits=[1]"]))


RHO_RATES = {"rho_simclr_k400": (0.6, "lars"), "rho_moco_k400": (0.2, "sgd"), "rho_byol_k400": (0.6, "lars"),
             "rho_swav_k400": (0.6, "lars")}


@pytest.mark.parametrize("name", sorted(RHO_RATES))
def test_rho_presets_schedule_in_epochs_with_rates_per_64_clips(name):
    """SlowFast configs/contrastive_ssl/*_8x8.yaml: 200 epochs, 35 of warm-up from 0.001, cosine,
    BASE_LR per 64-clip machine scaled with the machines (MoCo's doubled: the reference sums its
    two query clips' losses, this averages them)."""
    from benchmark.optim import schedule_in_steps
    t = compose_run([f"experiment={name}", "dataset.root=/x"]).trainer
    lr, optimizer = RHO_RATES[name]
    assert (t.epochs, t.warmup_epochs, t.warmup_start_lr, t.lr_reference_batch, t.schedule) == (200, 35, 0.001, 64, "cosine")
    assert (t.lr, t.optimizer) == (lr, optimizer)
    plan = schedule_in_steps(t, 239975, 64)  # Kinetics-400's training list on 64 GPUs of 8 clips
    assert (plan.steps, plan.warmup_steps) == (200 * 469, 35 * 469)  # ceil(239975 / 512) = 469 steps an epoch
    assert plan.lr == pytest.approx(lr * 512 / 64)


@pytest.mark.parametrize("name,mlp_bn,sync_bn", [("rho_simclr_k400", False, True), ("rho_moco_k400", False, False),
                                                  ("rho_byol_k400", True, True), ("rho_swav_k400", True, True)])
def test_rho_heads_and_sync_bn_as_the_reference(name, mlp_bn, sync_bn):
    """SlowFast: BN in the projection MLP only for BYOL and SwAV (CONTRASTIVE.BN_MLP), SyncBN for
    SimCLR, BYOL and SwAV (BN.NORM_TYPE sync_batchnorm); MoCo shuffles BN instead."""
    cfg = compose_run([f"experiment={name}", "dataset.root=/x"])
    assert (cfg.method.mlp_bn, cfg.trainer.sync_bn) == (mlp_bn, sync_bn)


@pytest.mark.parametrize("name", sorted(RHO_RATES))
def test_rho_presets_optimise_as_slowfasts_optimizer(name):
    """slowfast/config/defaults.py SOLVER.NESTEROV True; the configs' BN.WEIGHT_DECAY 0.0; LARS_ON
    with SlowFast's trust ratio (slowfast/models/optimizer.py) for all but MoCo."""
    t = compose_run([f"experiment={name}", "dataset.root=/x"]).trainer
    assert (t.nesterov, t.bn_weight_decay) == (True, 0.0)
    assert t.lars_trust == ("sum_of_norms" if t.optimizer == "lars" else "norm_of_sum")


def test_the_cpu_trainer_keeps_torchs_sgd_and_simclrs_lars():
    t = compose_run([]).trainer
    assert (t.nesterov, t.bn_weight_decay, t.lars_trust) == (False, None, "norm_of_sum")


@pytest.mark.parametrize("name", ["vdim_ucf101_table2", "vdim_k600_table3", "vdim_ablation"])
def test_vdim_paper_presets_have_no_batch_norm_inside_the_blocks(name):
    """Table 1 writes ConvBlock(5,5,2,2,False) and AMDIM trains with use_bn=0; the paper names BN
    only on the encoder's output and in the phi_j heads (sec. 4)."""
    assert compose_run([f"experiment={name}", "dataset.root=/x"]).encoder.block_bn is False
    assert compose_run([]).encoder.block_bn is True  # the embedded default keeps it (docs/synthetic.md)


@pytest.mark.parametrize("name", sorted(RHO_RATES))
def test_rho_presets_fine_tune_as_slowfasts_ucf101_config(name):
    """configs/contrastive_ssl/finetune_ucf_Slow_R50_syn8.yaml: BASE_LR 0.01 per 64-clip machine,
    cosine, MAX_EPOCH 200, no warm-up, WEIGHT_DECAY 0, DROPOUT_RATE 0.8, SSL colour jitter
    (0.4, 0.4, 0.4, 0.1) with grey 0.2; SOLVER.NESTEROV True."""
    from benchmark.optim import schedule_in_steps
    ft = compose_run([f"experiment={name}", "dataset.root=/x"]).eval.finetune
    assert (ft.preset, ft.optimizer, ft.schedule, ft.nesterov, ft.weight_decay, ft.dropout) == (
        "rho", "sgd", "cosine", True, 0.0, 0.8)
    assert ft.batch_size == 64  # TRAIN.BATCH_SIZE 64 with SyncBN over its 8 GPUs: one process's batch of 64
    a = ft.augment
    assert (a.color, a.jitter_p, a.brightness, a.contrast, a.saturation, a.hue, a.grayscale_p, a.blur_p) == (
        "jitter", 1.0, 0.4, 0.4, 0.4, 0.1, 0.2, 0.0)
    plan = schedule_in_steps(ft, 9537, 1)  # UCF-101 split 1's training list
    assert plan.steps == 200 * math.ceil(9537 / ft.batch_size) and plan.warmup_steps == 0
    assert plan.lr == pytest.approx(0.01 * ft.batch_size / 64)


def test_rho_moco_and_byol_presets_compute_keys_and_queue_as_slowfast():
    """SlowFast's MoCo/BYOL configs set CONTRASTIVE.SEQUENTIAL (keys clip by clip); its MoCo queue is
    each GPU's own and no update is made until it is full (contrastive_parameter_surgery)."""
    moco = compose_run(["experiment=rho_moco_k400", "dataset.root=/x"]).method
    assert (moco.target_batches, moco.queue_scope, moco.frozen_until_queue_full) == ("per_clip", "per_process", True)
    assert moco.shuffle_bn is True
    assert compose_run(["experiment=rho_byol_k400", "dataset.root=/x"]).method.target_batches == "per_clip"
    default = compose_run(["method=rho_moco"]).method
    assert (default.target_batches, default.queue_scope, default.frozen_until_queue_full) == ("together", "global", False)


@pytest.mark.parametrize("name", ["vdim_ucf101_table2", "vdim_k600_table3", "vdim_ablation"])
def test_vdim_paper_presets_fine_tune_with_amdims_classifier(name):
    assert compose_run([f"experiment={name}", "dataset.root=/x"]).eval.finetune.head == "amdim"
    assert compose_run([]).eval.finetune.head == "mlp"


def test_readme_lists_every_presets_compute_budget():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name in PRESETS:
        budget = compose_run([f"experiment={name}", "dataset.root=/x"]).compute_budget
        assert f"`{name}` {budget}" in readme, name


@pytest.mark.parametrize("name", sorted(RHO_RATES))
def test_rho_presets_test_at_256_with_three_crops(name):
    """SlowFast: TEST_CROP_SIZE 256 (training crops 224), 10 clips x 3 crops (TEST.NUM_ENSEMBLE_VIEWS,
    NUM_SPATIAL_CROPS); fine-tuning tests the same way."""
    cfg = compose_run([f"experiment={name}", "dataset.root=/x"])
    assert (cfg.eval.test_size, cfg.eval.spatial_crops, cfg.eval.clips_per_video, cfg.encoder.size) == (256, 3, 10, 224)


def test_a_test_size_the_encoder_cannot_take_fails_before_any_work():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="bad eval.test_size 96: encoder vdim_small takes 64 px"):
        plan_evaluation(compose_run(["eval.test_size=96"]))


@pytest.mark.parametrize("name", sorted(RHO_RATES))
def test_rho_presets_sample_at_30_fps_and_colour_before_the_crop_as_slowfast(name):
    """slowfast/config/defaults.py DATA.TARGET_FPS 30 (evaluation too: one setting there);
    kinetics.py colours and blurs the decoded frames before spatial_sampling crops them, and
    finetune_ucf_Slow_R50_syn8.yaml trains on TRAIN_JITTER_SCALES [256, 320] crops of 224."""
    cfg = compose_run([f"experiment={name}", "dataset.root=/x"])
    assert (cfg.dataset.target_fps, cfg.eval.target_fps) == (30, 30)
    assert cfg.method.augment.order == "colour_first" and cfg.trainer.augment_on == "workers"
    a = cfg.eval.finetune.augment
    assert (a.crop, list(a.scale_jitter), a.crop_size, a.order, a.flip_p) == ("scale_jitter", [256, 320], 224,
                                                                             "colour_first", 0.5)
    default = compose_run([])
    assert (default.dataset.target_fps, default.eval.target_fps, default.method.augment.order,
            default.method.augment.crop, default.eval.finetune.augment.crop) == (None, None, "crop_first", "resized",
                                                                               "resized")


@pytest.mark.parametrize("name", ["vdim_ucf101_table2", "vdim_k600_table3", "vdim_ablation"])
def test_vdim_paper_presets_flip_both_views_together_as_amdim(name):
    assert compose_run([f"experiment={name}", "dataset.root=/x"]).method.augment.flip_per == "sample"
    assert compose_run([]).method.augment.flip_per == "view"


def test_a_target_rate_not_above_zero_fails_before_any_work(tmp_path):
    proc = cli(["run", "dataset.target_fps=0", f"results_dir={tmp_path / 'r'}"], tmp_path)
    assert proc.returncode == 2
    assert one_line_error(proc).endswith(
        "bad dataset.target_fps 0.0: must be > 0 frames per second, or null for each video's own rate")
    assert not (tmp_path / "cache").exists()  # the synthetic set was not written: nothing was read
