"""Training for vla_adapter_ros: episode datasets, statistics, adaptive bins and fine-tuning.

Command lines (console entry points)::

    vla-adapter-stats --data EPISODES... --output dataset_statistics.json
    vla-adapter-bins  --data EPISODES... --n_action_bins 256 --output_dir OUT
    vla-adapter-train --data EPISODES... --pretrained CHECKPOINT --output_dir RUN [--lora_rank 32]
                      [--use_discrete_head --n_action_bins 256 | --use_dual_arm] [--resume]
    torchrun --nproc_per_node N -m training.finetune ...      # several GPUs (DDP)

Episodes are ALOHA ``record_episodes`` HDF5 files (raw or JPEG frames) or rosbag2 bags (mcap or
sqlite3) of the robot topics, aligned at ``--rate_hz``; see :mod:`training.dataset`.
"""
