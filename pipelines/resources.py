"""Resource requests for pipeline tasks: one place that says what a CPU or a GPU stage asks of Kubernetes."""

from kfp import dsl


def cpu_task(task: dsl.PipelineTask, cpus: str = "2", memory: str = "8G") -> dsl.PipelineTask:
    return task.set_cpu_request(cpus).set_memory_request(memory)


def gpu_task(
    task: dsl.PipelineTask,
    gpus: int = 1,
    cpus: str = "8",
    memory: str = "32G",
    accelerator: str = "nvidia.com/gpu",
) -> dsl.PipelineTask:
    """A training task: one GPU by default, and enough CPU for data loading to keep up with it."""
    return cpu_task(task, cpus, memory).set_accelerator_type(accelerator).set_accelerator_limit(gpus)
