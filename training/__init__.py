"""Training for vla_adapter_ros: episode datasets, statistics, adaptive bins and fine-tuning.

Command lines (console entry points)::

    vla-adapter-stats --data EPISODES... [--robot aloha] --output dataset_statistics.json
    vla-adapter-bins  --data EPISODES... --n_action_bins 256 --output_dir OUT
    vla-adapter-train --data EPISODES... --pretrained CHECKPOINT --output_dir RUN [--lora_rank 32]
                      [--head_kind {l1,discrete,dual_arm}] [--config run.yaml] [--resume]
                      [--gradient_checkpointing] [--optimizer {adamw,adamw_fused,adamw_8bit}]
                      [--full_finetune]
    torchrun --nproc_per_node N -m training.finetune ...      # several GPUs (DDP)

Every flag comes from a config dataclass field (:mod:`training.config_cli`); ``--config`` takes
a YAML / JSON file of the same settings, such as a run's saved ``train_config.json``.

Episodes are ALOHA ``record_episodes`` HDF5 files (raw or JPEG frames) or rosbag2 bags (mcap or
sqlite3) of the robot topics, aligned at ``--rate_hz``; see :mod:`training.dataset`.
"""
