"""The schema and the plan (wconv.config, wconv.plan): every key group refuses its bad values in one line that names
the key, before anything is written; valid values keep working; search.space searches what it accepts."""

import pytest
from conftest import compose_train, run_cli

from wconv.cli_checks import check_overrides
from wconv.plan import make

SEARCH = ["search=direct_l"]
DNCNN = ["model=dncnn", "data=photos", "optim=adam"]

# (overrides, the key the one line names, a fragment of what it says)
BAD = [
    # top level
    (["seed=abc"], "seed=", "must be an integer"),
    (["seed=nan"], "seed=", "must be an integer"),
    (["seed=1.5"], "seed=", "must be an integer"),
    (["seed=-1"], "seed=", "greater than or equal to 0"),
    (["seed=4294967296"], "seed=", "less than or equal to 4294967295"),
    (["device=gpu"], "device=", "must be auto, cpu, cuda"),
    (["progress=maybe"], "progress=", "must be true or false"),
    # train
    (["train.epochs=0"], "train.epochs=", "greater than or equal to 1"),
    (["train.epochs=abc"], "train.epochs=", "must be an integer"),
    (["train.batch_size=0"], "train.batch_size=", "greater than or equal to 1"),
    (["train.val_every=0"], "train.val_every=", "greater than or equal to 1"),
    (["train.checkpoint_minutes=-1"], "train.checkpoint_minutes=", "greater than or equal to 0"),
    (["train.precision=fp8"], "train.precision=", "must be 'bf16' or 'fp32'"),
    (["train.compile=no"], "train.compile=", "must be true or false"),
    # final
    (["final.epochs=0"], "final.epochs=", "greater than or equal to 1"),
    (["final.seeds=[]"], "final.seeds=", "at least 1 item"),
    (["final.seeds=[0,0]"], "final.seeds=", "lists a seed twice"),
    (["final.seeds=[a]"], "final.seeds[0]=", "must be an integer"),
    (["final.baseline=yes"], "final.baseline=", "must be true or false"),
    (["final.arms=[bigger]"], "final.arms[0]=", "must be one of preconditioned"),
    (["final.arms=[sgs,sgs]"], "final.arms=", "lists an arm twice"),
    (["final.budgets=[inf]"], "final.budgets[0]=", "finite number"),
    (["final.budgets=[0]"], "final.budgets[0]=", "greater than 0"),
    (["final.budgets=[2]", "final.budget_seeds={4:1}"], "final.budget_seeds[4]=", "not in final.budgets"),
    (["final.budgets=[2]", "final.budget_seeds={2:9}"], "final.budget_seeds[2]=", "more than the 3 final.seeds"),
    (["final.budgets=[0.5]", "final.budget_seeds={0.5:0}"], "final.budget_seeds[0.5]=", "greater than or equal to 1"),
    (["final.budgets=[2]", "final.budget_seeds={a:1}"], "final.budget_seeds[a]=", "must be a number"),
    (["final.budgets=[2]", "final.budget_seeds=[1]"], "final.budget_seeds=", "must be a mapping"),
    (
        ["final.budgets=[2,4]", "final.budget_seeds={2:1}", "final.budget_seeds={4:1}"],
        "final.budget_seeds:",
        "to replace it write ~final.budget_seeds +final.budget_seeds={...}",
    ),
    # data
    (["data.limit_train=0"], "data.limit_train=", "greater than or equal to 1"),
    (["data.val_fraction=1.5"], "data.val_fraction=", "less than 1"),
    (["data.split_seed=-1"], "data.split_seed=", "greater than or equal to 0"),
    (["data.augment=maybe"], "data.augment=", "must be true or false"),
    (["data=photos", "data.sigma=-1"], "data.sigma=", "greater than or equal to 0"),
    (["data=photos", "data.patch_size=2"], "data.patch_size=", "greater than or equal to 8"),
    (["data=photos", "data.patches_per_epoch=0"], "data.patches_per_epoch=", "greater than or equal to 1"),
    (["data=image_folder"], "data.folder", "must be set"),
    # model
    (["model.width=0"], "model.width=", "greater than 0"),
    (["model.kernel_size=4"], "model.kernel_size=", "must be odd"),
    (["model.kernel_size=0"], "model.kernel_size=", "greater than or equal to 1"),
    ([*DNCNN, "model.depth=1"], "model.depth=", "greater than or equal to 2"),
    (["model=nafnet", "data=photos", "model.dec_blocks=[1,1]"], "model.dec_blocks=", "one count per encoder stage"),
    (["+model.depth=3"], "model.depth=", "does not apply to vgg11"),
    # density
    (["density=fixed"], "density.den=", "needs density.den"),
    (["density=fixed", "density.den=abc"], "density.den=", "must be a list"),
    (["density.den=[0.7]"], "density.den=", "needs density=fixed"),
    (["density=fixed", "density.den=[-1]"], "density.den", "greater than 0"),
    (["density=fixed", "density.den=[0.5,0.5]"], "density.den", "needs 1 density value"),
    (["density.family=foo"], "density.family=", "must be one of symmetric"),
    (["density=learned", "density.lr=0"], "density.lr=", "greater than 0"),
    (["density.skip_depthwise=maybe"], "density.skip_depthwise=", "must be true or false"),
    # search
    ([*SEARCH, "search.max_evals=0"], "search.max_evals=", "greater than or equal to 1"),
    ([*SEARCH, "search.bounds=5"], "search.bounds=", "must be a list"),
    ([*SEARCH, "model.kernel_size=5", "search.bounds=[0.5,1.5]"], "search.bounds", "must be a list"),
    ([*SEARCH, "search.bounds=[[1.5,0.5]]"], "search.bounds[0]=", "need 0 < low < high"),
    ([*SEARCH, "search.bounds=[[0.5,1.5],[0.5,1.5]]"], "search.bounds=", "needs 1 pair(s)"),
    ([*SEARCH, "search.ftol_rel=abc"], "search.ftol_rel=", "must be a number"),
    ([*SEARCH, "search.ftol_rel=-1"], "search.ftol_rel=", "greater than or equal to 0"),
    ([*SEARCH, "search.objective=foo"], "search.objective=", "must be one of val_loss"),
    ([*SEARCH, *DNCNN, "search.objective=error"], "search.objective=", "does not apply to denoising"),
    ([*SEARCH, "search.penalty=-1000"], "search.penalty=", "diverged evaluation could win"),
    ([*SEARCH, "search.penalty=nan"], "search.penalty=", "finite number"),
    ([*SEARCH, "search.workers=abc"], "search.workers=", "must be an integer"),
    ([*SEARCH, "search.launcher=ssh"], "search.launcher=", "must be 'local' or 'submitit'"),
    ([*SEARCH, "search.submitit.timeout_min=0"], "search.submitit.timeout_min=", "greater than or equal to 1"),
    ([*SEARCH, "density=learned"], "density=", "finds den itself"),
    ([*SEARCH, "model.kernel_size=1"], "model.kernel_size=", "no density to search"),
    ([*SEARCH, "search.space=[{key:train.epochs,low:1,high:5}]"], "search.space[0].key=", "one budget"),
    ([*SEARCH, "search.space=[{key:seed,low:0,high:5}]"], "search.space[0].key=", "share one seed"),
    ([*SEARCH, "search.space=[{key:data.sigma,low:1,high:5}]"], "search.space[0].key=", "cannot be searched"),
    ([*SEARCH, "search.space=[{key:density.lr,low:0.1,high:1}]"], "search.space[0].key=", "cannot be searched"),
    ([*SEARCH, "search.space=[{key:optim.nothing,low:0.1,high:1}]"], "search.space[0].key=", "not a numeric key"),
    ([*SEARCH, "search.space=[{key:optim.lr,low:0.1,high:0.01}]"], "search.space[0]=", "needs low < high"),
    ([*SEARCH, "search.space=[{key:optim.lr,low:0,high:0.1,log:true}]"], "search.space[0].low=", "needs low > 0"),
    ([*SEARCH, "search.space=[{key:optim.momentum,low:0.5,high:2}]"], "search.space[0]", "optim.momentum=2"),
    ([*SEARCH, "search.space=[{key:optim.lr,low:0.1,high:1}]", "search.bounds=[[0.5,1.5]]"], "search.bounds=", "box"),
    # optim
    (["optim.lr=0"], "optim.lr=", "greater than 0"),
    (["optim.lr=1e308"], "optim.lr=", "less than or equal to 10"),
    (["optim.momentum=-1"], "optim.momentum=", "greater than or equal to 0"),
    (["optim.momentum=nan"], "optim.momentum=", "finite number"),
    (["optim.momentum=1"], "optim.momentum=", "less than 1"),
    (["optim.weight_decay=-1"], "optim.weight_decay=", "greater than or equal to 0"),
    (["optim.nesterov=true", "optim.momentum=0"], "optim.nesterov=", "momentum > 0"),
    (["optim=adam", "optim.betas=[2,0.999]"], "optim.betas[0]=", "less than 1"),
    (["optim=adam", "optim.betas=[0.9]"], "optim.betas=", "at least 2 items"),
    (["optim.milestones=[abc]"], "optim.milestones[0]=", "must be a number"),
    (["optim.milestones=[0.8,0.5]"], "optim.milestones=", "must increase"),
    (["optim.schedule=cosin"], "optim.schedule=", "must be 'none', 'multistep' or 'cosine'"),
    (["optim.warmup_epochs=-1"], "optim.warmup_epochs=", "greater than or equal to 0"),
    (["optim.grad_clip=-1"], "optim.grad_clip=", "greater than or equal to 0"),
    (["optim.gamma=0"], "optim.gamma=", "greater than 0"),
    (["optim=adamw", "optim.min_lr=1"], "optim.min_lr=", "below optim.lr"),
    (["optim.name=foo"], "optim.name=", "must be 'sgd', 'adam' or 'adamw'"),
    # logger
    (["logger.mode=loud"], "logger.mode=", "must be 'auto', 'online', 'offline' or 'disabled'"),
]


@pytest.mark.parametrize(("overrides", "key", "fragment"), BAD, ids=[" ".join(o) for o, _, _ in BAD])
def test_every_bad_value_is_one_line_naming_its_key(overrides, key, fragment):
    problem, _ = check_overrides([*overrides, "logger=none"] if "logger." not in overrides[0] else overrides)
    assert problem is not None, f"{overrides} was accepted"
    assert "\n" not in problem and problem.startswith(key), problem
    assert fragment in problem, problem
    assert "Undefined" not in problem, problem  # a required key has no default to show as an example


GOOD = [
    ["seed=3", "device=cpu", "progress=false"],
    ["train.compile=true", "train.precision=fp32", "train.checkpoint_minutes=0"],
    ["final.seeds=[0,5]", "final.arms=[preconditioned,init_only,step_only,sgs,lr_matched]", "final.budgets=[0.5,2]"],
    ["final.seeds=[0,1,2]", "final.budgets=[0.5,2]", "final.budget_seeds={0.5:2,2:1}"],
    ["optim=adam", "optim.betas=[0.9,0.99]", "optim.lr=1"],
    ["optim.nesterov=true"],
    ["density=fixed", "density.den=[0.7]", "density.family=symmetric"],
    ["density=fixed", "density.den=[1.3]", "density.family=gaussian", "model.kernel_size=5"],
    ["density=learned", "density.family=hann"],
    [*SEARCH, "model.kernel_size=7", "search.workers=4", "search.launcher=submitit"],
    [*SEARCH, "density.family=tent", "model.kernel_size=5"],
    [*SEARCH, "search.space=[{key:optim.lr,low:1e-4,high:1e-2,log:true}]"],
    ["data=image_folder", "data.folder=x", "data.test_folder=y"],
]


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(o) for o in GOOD])
def test_valid_values_keep_working(overrides):
    problem, run_dir = check_overrides([*overrides, "logger=none", "device=cpu"])
    assert problem is None and run_dir is not None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is usable here")
def test_a_device_that_is_not_here_is_one_line():
    problem, _ = check_overrides(["device=cuda", "profile=smoke"])
    assert problem.startswith("device=cuda: CUDA is not usable here (") and "device=cpu" in problem
    problem, _ = check_overrides([])  # profile=paper and device=auto on a CPU: months of training, refused
    assert problem.startswith("profile=paper would train on the CPU") and "device=cpu" in problem
    assert check_overrides(["device=cpu"])[0] is None and check_overrides(["profile=smoke"])[0] is None


def test_an_integer_key_is_searched_as_integers_and_recorded_as_such():
    plan = make(compose_train([*SEARCH, *DNCNN, "search.space=[{key:model.depth,low:3,high:9}]"]))
    (dim,) = plan.space
    assert dim.integer and plan.bounds == ((3, 9),)
    values = plan.point_values([5.4])
    assert values == {"model.depth": 5} and isinstance(values["model.depth"], int)
    assert plan.changed(values).config.model.depth == 5
    lr = make(compose_train([*SEARCH, "search.space=[{key:optim.lr,low:1e-3,high:1e-1,log:true}]"]))
    assert not lr.space[0].integer and lr.point_values([-2.0]) == {"optim.lr": pytest.approx(0.01)}


def test_the_plan_is_read_once_and_frozen():
    plan = make(compose_train(["experiment=dncnn_div2k_direct_l", "profile=smoke", "logger=none"]))
    assert plan.searches and plan.density == "direct_l" and plan.bounds == ((0.5, 1.5),)
    variants, skipped = plan.variants()
    assert [v.name for v in variants][:3] == ["weighted", "preconditioned", "init_only"] and not skipped
    assert plan.optim.name == "adam" and plan.loop.val_every == 1
    with pytest.raises(Exception):  # noqa: B017 (pydantic's frozen error)
        plan.config.optim.lr = 1.0
    assert "matrix" not in plan.resolved and "hydra" not in plan.resolved


NO_CUDA = [] if __import__("torch").cuda.is_available() else [["device=cuda"], ["profile=paper"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["optim.momentum=-1"], ["train.compile=no"], ["seed=1.5"], ["optim.schedule=cosin"], *NO_CUDA]
)
def test_on_the_command_line_a_bad_value_is_exit_2_and_nothing_written(tmp_path, args):
    run_dir = tmp_path / "run"
    proc = run_cli([*args, "logger=none", f"hydra.run.dir={run_dir}"], timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: " + args[0].split("=")[0])
    assert not run_dir.exists()
