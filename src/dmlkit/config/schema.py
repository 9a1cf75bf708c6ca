"""The run configuration: typed sections with paper-faithful defaults.

Sections mirror the YAML files in ``configs/``. Components chosen by name
(``loss``, ``method``, transform options, backbone keyword arguments) are free-form
mappings here and are checked against their factory's signature by the dry build of
:func:`dmlkit.assembly.check_config`, so every unknown key is reported with the valid choices
before anything is created.

A ``None`` default marks a value the assembly derives (the dataset's image size, the P×K
batch of a method that uses it); the run's ``config.yaml`` records the derived value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class DataConfig:
    """Dataset, transforms and batch composition.

    Attributes:
        dataset: Registered dataset name (``dmlkit datasets`` lists them).
        root: Folder holding the dataset in its official layout (unused by ``digits``).
        image_size: Crop size; ``None`` takes the dataset's default (224 for photos, 28 for
            Omniglot/MNIST, 8 for digits).
        transform: Options passed to :func:`dmlkit.data.transforms.build_transforms`
            (``protocol``, ``scale``, ``resize_size``, ``mean``, ``std``, ...).
        classes_per_batch: P of the P×K class-balanced batch sampler (``None``: 5).
        samples_per_class: K of the P×K sampler (``None``: 8).
        skip_singleton_classes: Drop training classes with a single image (they cannot form a
            positive pair) with a warning, instead of stopping with an error (``None``: false).
        num_workers: DataLoader worker processes.
        eval_batch_size: Batch size for embedding the evaluation sets.
        background: RGB colour (0-255) that transparent images are composited onto (white).
        cache: Keep the decoded training and test images in memory: ``auto`` (default: when they take
            at most 1 GB), ``memory`` or ``none`` (:mod:`dmlkit.data.cache`).
        validation_classes: Hold out the last this many training classes and evaluate on them instead
            of the test split (:mod:`dmlkit.data.holdout`): model selection without the test classes
            (``None``: off).

    ``dataset`` ``None`` is the bundled ``digits``, and only without a ``root``: a root with no
    dataset named is refused (which layout it holds cannot be guessed).

    The three P×K keys belong to the P×K sampler: a method that brings its own batches (Magnet,
    PL-Manifold, the pseudo-label baseline) rejects them.
    """

    dataset: str | None = None
    root: str | None = None
    image_size: int | None = None
    transform: dict[str, Any] = field(default_factory=dict)
    classes_per_batch: int | None = None
    samples_per_class: int | None = None
    skip_singleton_classes: bool | None = None
    num_workers: int = 0
    eval_batch_size: int = 256
    background: list[int] = field(default_factory=lambda: [255, 255, 255])
    validation_classes: int | None = None
    cache: Literal["auto", "memory", "none"] = "auto"


@dataclass
class ModelConfig:
    """Backbone and embedding head (see :func:`dmlkit.models.build_model`)."""

    backbone: str = "small_cnn"
    pretrained: bool | str = False
    embedding_dim: int = 64
    pooling: str = "avg"
    normalize: bool = True
    freeze_bn: bool = False
    head_init: str = "default"
    head_dropout: float = 0.0
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    """Optimiser and per-group learning-rate multipliers.

    ``backbone_lr_mult`` and ``head_lr_mult`` scale the base LR for the backbone and the
    embedding head; ``method_lr_mult`` for a method's extra heads (DVML's decoder, the MPN). A
    loss's own parameters (proxies) train at the loss's ``lr_mult`` (the ``loss`` section).
    """

    name: Literal["adam", "adamw", "radam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    backbone_lr_mult: float = 1.0
    head_lr_mult: float = 1.0
    method_lr_mult: float = 1.0


@dataclass
class SchedulerConfig:
    """Learning-rate schedule, applied per optimisation step.

    ``warmup_epochs`` ramps the LR linearly from ``warmup_start`` × lr; then ``name``:
    ``constant``, ``cosine`` (to ``min_lr_ratio`` × lr), ``step`` (× ``gamma`` every
    ``step_epochs``) or ``multistep`` (× ``gamma`` at each of ``milestones`` epochs).
    """

    name: Literal["constant", "cosine", "step", "multistep"] = "constant"
    warmup_epochs: float = 0.0
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.0
    step_epochs: int = 10
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    """Devices, precision and the loop (run through Lightning Fabric).

    Attributes:
        accelerator: ``auto``, ``cpu``, ``cuda``, ``gpu``, ``mps`` or ``tpu``.
        devices: Number of devices per node (``-1``: all), a list of device indices, or ``auto``.
        num_nodes: Number of nodes (machines) of a multi-node run.
        precision: Fabric precision: ``32-true``, ``16-mixed``, ``bf16-mixed``, ...
        strategy: Fabric strategy: ``auto``, ``ddp``, ``fsdp``, ...
        distributed_batch: Under several processes, ``global`` (default): the batch keys are per
            process and the loss sees the global batch of all processes together (embeddings
            gathered, gradients as one process training on it); ``per_rank``: each process's loss
            sees its own batch only (:mod:`dmlkit.distributed`).
        sync_batchnorm: Batch statistics of BatchNorm over the global batch (``SyncBatchNorm``; CUDA
            only). Off (default): each process normalises with its own shard's statistics.
        epochs: Number of epochs (an epoch = one pass of the batch sampler).
        max_steps_per_epoch: Cap on optimisation steps per epoch (``None``: the sampler's length).
        eval_every: Evaluate every N epochs (and always after the last).
        checkpoint_every_steps: Also save ``last.pt`` every N steps (``0``: only at epoch end).
        log_every: Log training scalars every N steps.
        grad_clip: Clip gradient norm to this value (``None``: off).
        progress_bar: Show a tqdm bar with loss and images/s (``auto``: when attached to a terminal).
        threads: CPU threads for torch (``None``: torch's default).
    """

    accelerator: str = "auto"
    devices: int | list[int] | str = 1
    num_nodes: int = 1
    precision: str = "32-true"
    strategy: str = "auto"
    distributed_batch: Literal["global", "per_rank"] = "global"
    sync_batchnorm: bool = False
    epochs: int = 10
    max_steps_per_epoch: int | None = None
    eval_every: int = 1
    checkpoint_every_steps: int = 0
    log_every: int = 10
    grad_clip: float | None = None
    progress_bar: bool | Literal["auto"] = "auto"
    threads: int | None = None


@dataclass
class EvalConfig:
    """Zero-shot retrieval and clustering evaluation.

    Attributes:
        recall_at: Ks of Recall@K (1,2,4,8 for CUB/Cars; 1,10,100,1000 for SOP; 1,10,20,30,40 In-Shop).
        metrics: Which of ``recall``, ``nmi``, ``f1``, ``map@r``, ``r_precision`` to compute.
        distance: ``euclidean``, ``cosine`` or ``dot``.
        backend: kNN backend: ``auto`` (dmlkit's blocked torch search, the fastest measured), ``torch`` or ``faiss``.
        best_metric: Metric whose maximum selects ``best.pt``.
        untrained: Evaluate once before the first step (``metrics.json["untrained"]``).
        retrieval_queries: After the final evaluation, ``plots/retrieval.png`` shows this many random
            test queries with their ``retrieval_neighbours`` nearest neighbours (0: no figure).
    """

    recall_at: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    metrics: list[str] = field(default_factory=lambda: ["recall", "nmi", "f1", "map@r", "r_precision"])
    distance: Literal["euclidean", "cosine", "dot"] = "euclidean"
    backend: Literal["auto", "torch", "faiss"] = "auto"
    best_metric: str = "recall@1"
    untrained: bool = True
    retrieval_queries: int = 6
    retrieval_neighbours: int = 5


@dataclass
class RunConfig:
    """A whole training run.

    ``loss`` and ``method`` are ``{name: ..., <params>}`` mappings resolved through the
    loss and method registries. The default method, ``metric_loss``, trains the
    embedding with ``loss`` alone; seed methods wrap a loss (DVML, the pseudo-label baseline)
    or bring their own (Magnet, Intra-batch, PL-Manifold, which reject a ``loss`` section).
    ``loss: None`` (the default) means ``{name: triplet}`` for a method that trains a loss.
    ``paper`` names the published row a config reproduces, ``{row: <label>, metrics: {recall@1: 0.804,
    ...}}`` (fractions), which ``dmlkit report`` sets beside the measured figures; it changes no training.
    """

    seed: int = 0
    output_dir: str = "runs"
    name: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: dict[str, Any] | None = None
    method: dict[str, Any] = field(default_factory=lambda: {"name": "metric_loss"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paper: dict[str, Any] | None = None
