# A test instrument: runs a command on a pseudo-terminal of its own and types at it, as a
# person at a terminal would. argv[1]: the command as a JSON list; argv[2]: JSON list of
# [text to wait for on the terminal, keys to type then]. Prints one JSON object: everything
# the terminal showed and the exit status. Every wait is bounded.
import json, os, pty, select, sys, time

command = json.loads(sys.argv[1])
steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)

shown = b""

def read_some(seconds):
    global shown
    ready, _, _ = select.select([fd], [], [], seconds)
    if not ready:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # EIO: the other side closed
        return False
    if not chunk:
        return False
    shown += chunk
    return True

for wait_for, keys in steps:
    deadline = time.time() + 30
    while wait_for.encode() not in shown and time.time() < deadline:
        if not read_some(0.2):
            break
    os.write(fd, keys.encode())

deadline = time.time() + 60
status = None
while time.time() < deadline:
    alive = read_some(0.2)
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
        while read_some(0.1):
            pass
        break
    if not alive:
        time.sleep(0.05)
if status is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(json.dumps({"shown": shown.decode("utf-8", "replace"), "code": os.waitstatus_to_exitcode(status) if status is not None else None}))
