"""ROS 2 adapters for VLA-Adapter policies, in rooms (docs/ARCHITECTURE.md, "Rooms").

pipeline/, params/, recording/, replay/, sim/ and bringup/ never import rclpy; nodes/ holds the
rclpy node shells and tools/ the programs that talk to running nodes. Importing this package
imports nothing else.
"""
