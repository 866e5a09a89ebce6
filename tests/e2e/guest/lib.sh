# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Helpers for the guest's scenarios. Lines starting with "E2E " are for the
# host harness; each VMM's output is echoed with its id as a prefix, and kept
# in /run/vmm/ID.log for the scenario to wait on.

E2E_TIMEOUT=${E2E_TIMEOUT:-120}
STATE_DIR=/mnt/state

e2e() { echo "E2E $*"; }

finish() {
	sync
	umount /mnt 2>/dev/null
	e2e "end"
	# -no-reboot on the QEMU command line turns this into an exit.
	reboot -f
}

fail() {
	e2e "fail $*"
	finish
}

start_daemon() {
	mkdir -p "$STATE_DIR"
	liveupdated --state-dir="$STATE_DIR" "$@" 2>&1 | prefix daemon &
	wait_for 30 "the daemon's sockets" test -S /run/liveupdated/control.sock
}

prefix() {
	while IFS= read -r line; do
		echo "$1: $line"
	done
}

# start_vmm ID [refvmm options...]: runs a reference VMM in the background.
start_vmm() {
	local id=$1
	shift
	start_process "$id" liveupdate-refvmm --vm-id "$id" "$@"
}

# start_process ID COMMAND...: runs a VMM-like program in the background; its
# JSON lines are its events, like a reference VMM's.
start_process() {
	local id=$1
	shift
	mkdir -p /run/vmm
	: >"/run/vmm/$id.log"
	(
		"$@" 2>&1 &
		pid=$!
		echo $pid >"/run/vmm/$id.pid"
		# its own status (a bare wait would say 0): 128+N when killed by N
		wait $pid
		echo "{\"event\":\"exited\",\"status\":$?}"
	) | while IFS= read -r line; do
		echo "vmm $id: $line"
		echo "$line" >>"/run/vmm/$id.log"
	done &
	wait_for 10 "vmm $id to start" test -s "/run/vmm/$id.pid"
}

vmm_pid() { cat "/run/vmm/$1.pid"; }

# The VMs vm1..vmN of an update: half let the daemon preserve their fds, half
# preserve them themselves; E2E_MEM_MIB, E2E_RAM_FDS and E2E_NAP_US size them.
cycle_vmm_args() {
	local mode=send
	[ $(($1 % 2)) = 0 ] && mode=self
	echo "--mem-mib ${E2E_MEM_MIB:-16} --ram-fds ${E2E_RAM_FDS:-2} --mode $mode --seed $1" \
		"--write-nap-us ${E2E_NAP_US:-0}"
}

# start_vmms N: starts vm1..vmN, each with cycle_vmm_args.
start_vmms() {
	local i
	for i in $(seq "$1"); do
		start_vmm "vm$i" $(cycle_vmm_args "$i")
	done
}

# wait_vmms N EVENT: until each of vm1..vmN has printed EVENT.
wait_vmms() {
	local i
	for i in $(seq "$1"); do
		wait_event "vm$i" "$2"
	done
}

# restart_vmms N: in the new kernel, vm1..vmN start again, get their memory
# back and write on; the update's report and the status go to the host.
restart_vmms() {
	start_vmms "$1"
	wait_vmms "$1" resumed
	wait_vmms "$1" writing
	e2e "vmms writing"
	e2e "report $(liveupdatectl report --json)"
	e2e "status $(liveupdatectl status --json)"
}

# verify_vmms ID...: each VMM checks all of its memory again, now.
verify_vmms() {
	local id
	for id in "$@"; do
		kill -USR1 "$(vmm_pid "$id")"
		wait_event "$id" verified
	done
}

# The driver the PCI device at sysfs directory $1 is bound to, or nothing.
driver_of() { basename "$(readlink "$1/driver")" 2>/dev/null; }

# bind_edu_to_vfio SYSFS_DIR: hands the edu device to vfio-pci, as an
# operator's tooling does (checks edu-present, edu-bound).
bind_edu_to_vfio() {
	check edu-present [ -d "$1" ]
	echo vfio-pci >"$1/driver_override"
	echo "$(basename "$1")" >/sys/bus/pci/drivers_probe
	check edu-bound [ "$(driver_of "$1")" = vfio-pci ]
}

# has_event ID EVENT: the VMM has printed that event.
has_event() { grep -q "\"event\":\"$2\"" "/run/vmm/$1.log"; }

# wait_for SECONDS WHAT COMMAND...: polls until COMMAND succeeds.
wait_for() {
	local limit=$1 what=$2 i=0
	shift 2
	while ! "$@"; do
		i=$((i + 1))
		[ $i -gt $((limit * 10)) ] && fail "timed out after ${limit}s waiting for $what"
		usleep 100000
	done
}

wait_event() { wait_for "$E2E_TIMEOUT" "vmm $1 to print \"$2\"" has_event "$1" "$2"; }

# count_events ID EVENT: how many times the VMM has printed that event.
count_events() { grep -c "\"event\":\"$2\"" "/run/vmm/$1.log"; }

# has_events ID EVENT N: the VMM has printed that event N times or more;
# the scenario fails at once if the VMM reported an error or exited instead.
has_events() {
	[ "$(count_events "$1" "$2")" -ge "$3" ] && return 0
	has_event "$1" error && fail "vmm $1 reported an error before it printed \"$2\" $3 time(s)"
	has_event "$1" exited && fail "vmm $1 exited before it printed \"$2\" $3 time(s)"
	return 1
}

# wait_alive ID EVENT [N]: wait_event for a VMM that must neither err nor
# exit meanwhile.
wait_alive() {
	wait_for "$E2E_TIMEOUT" "vmm $1 to print \"$2\" ${3:-1} time(s)" has_events "$1" "$2" "${3:-1}"
}

# check NAME COMMAND...: records a named check, and stops the scenario on failure.
check() {
	local name=$1
	shift
	if "$@"; then
		e2e "check $name ok"
	else
		fail "check $name failed"
	fi
}
