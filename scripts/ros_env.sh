# Source me (bash): the environment every process that starts rclpy here runs in.
# - the colcon install space (vla_adapter_msgs, vla_adapter_ros) and, when built, the test-only
#   interbotix_xs_msgs;
# - DDS confined to this host: LOCALHOST discovery plus a loopback/shared-memory Fast DDS profile;
# - a ROS_DOMAIN_ID of its own per run and ROS_LOG_DIR inside the build tree.
_vla_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_vla_venv=${VENV:-$_vla_repo/.venv}
export VIRTUAL_ENV=$_vla_venv
export PATH=$_vla_venv/bin:$PATH
# colcon's setup scripts read unset variables: source them without `set -u`, then restore it.
case $- in *u*) _vla_nounset=1; set +u ;; *) _vla_nounset= ;; esac
# shellcheck disable=SC1091
source "$_vla_repo/install/setup.bash"
# The console scripts (vla-adapter-train, vla-adapter-predict, ...) live where `ros2 run` looks.
export PATH=$_vla_repo/install/vla_adapter_ros/lib/vla_adapter_ros:$PATH
if [ -f "$_vla_repo/build/test_interfaces/install/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_vla_repo/build/test_interfaces/install/local_setup.bash"
fi
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE=$_vla_repo/config/fastdds_loopback.xml
export ROS_DOMAIN_ID=${VLA_TEST_DOMAIN_ID:-$((100 + RANDOM % 100))}
export ROS_LOG_DIR=$_vla_repo/build/ros_log
mkdir -p "$ROS_LOG_DIR"
if [ -n "$_vla_nounset" ]; then set -u; fi
unset _vla_repo _vla_venv _vla_nounset
