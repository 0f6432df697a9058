#!/bin/sh
# Diagnosis in a lab guest, beside the job (lab/vm.ts starts it from run.sh when
# VFIOCTL_LAB_GUEST_DUMP_S=N is set): when the serial console has sent nothing for N seconds
# (ttyS0's tx count in /proc/tty/driver/serial), first sysrq-w (blocked tasks), the kernel log's
# last 40 records and the kernel stack of every task in D state on the console (printk, which
# polls the UART and needs no 9p), then every process with its state, wait channel and kernel
# stack, /proc/interrupts and the whole kernel log in /tmp/stall-dump-K.txt (the run folder).
# At most three dumps. lspci is left out: it blocks behind a PCI reset in progress.
Q=${1:-60}
last=
quiet=0
n=0
while sleep 5; do
  tx=$(sed -n 's/^0: .* tx:\([0-9]*\).*/\1/p' /proc/tty/driver/serial 2>/dev/null)
  if [ "$tx" = "$last" ]; then quiet=$((quiet + 5)); else quiet=0; last=$tx; fi
  [ "$quiet" -ge "$Q" ] || continue
  [ "$n" -lt 3 ] || exit 0
  n=$((n + 1))
  quiet=0
  # first on the console (printk polls the UART and needs no 9p): the blocked tasks and the
  # kernel log's last records, which loglevel=3 kept off the console
  dmesg -n 8 2>/dev/null
  echo w > /proc/sysrq-trigger
  dmesg 2>&1 | tail -40 | while IFS= read -r l; do echo "stall-dump: $l" > /dev/kmsg; done
  for p in /proc/[0-9]*; do
    case $(sed -n 's/^State:\t*//p' $p/status 2>/dev/null) in
      D*) echo "stall-dump: D ${p#/proc/} $(cat $p/comm 2>/dev/null) $(tr '\n' ' ' < $p/stack 2>/dev/null)" > /dev/kmsg ;;
    esac
  done
  dmesg -n 3 2>/dev/null
  f=/tmp/stall-dump-$n.txt
  {
    echo "uptime $(cat /proc/uptime) console quiet ${Q}s"
    echo "== dmesg"
    dmesg 2>&1
    echo "== /proc/interrupts"
    cat /proc/interrupts
    ps -eo pid,ppid,stat,wchan:40,etime,args
    for p in /proc/[0-9]*; do
      echo "== ${p#/proc/} $(cat $p/comm 2>/dev/null) $(sed -n 's/^State:\t*//p' $p/status 2>/dev/null)"
      cat $p/stack 2>/dev/null
      for t in $p/task/[0-9]*; do
        [ "$t" = "$p/task/${p#/proc/}" ] && continue
        echo "  -- thread ${t##*/} $(cat $t/comm 2>/dev/null) $(sed -n 's/^State:\t*//p' $t/status 2>/dev/null)"
        cat $t/stack 2>/dev/null | sed 's/^/  /'
      done
    done
  } > "$f" 2>&1
done
