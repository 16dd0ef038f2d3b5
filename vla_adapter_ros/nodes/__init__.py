"""Nodes: the rclpy shells — subscriptions, timers, services, publishing — and main().

Each node drives logic from pipeline/, recording/ or sim/ and reads its config from params/.
The only room whose modules are node modules.
"""
