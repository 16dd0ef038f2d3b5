"""Facts of the simulated tasks that tools need without loading MuJoCo: instruction, success.

mujoco_aloha.py imports gym-aloha and its renderer; the tools that only name a task or score
its rewards read these instead.
"""

# The instruction the scripted demonstrations are recorded with and the policy is asked.
DEFAULT_INSTRUCTION = 'transfer the red cube to the other arm'
SUCCESS_REWARD = 4  # gym-aloha's reward for a finished task (TransferCube and Insertion)
