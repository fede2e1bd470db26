import time
from tycho import Location

def dc(obj, data):
    print(str(data, 'ascii'), end='')

def tc(obj):
    print("Vmstat terminated")

def sleep_tc(obj):
    print("---Sleep terminated---")

location = Location(debug_log=False)
container = location.best_node().spawn('nginx')
vmstat = container.spawn_process('vmstat 1', data_callback=dc, termination_callback=tc)
sleep = container.spawn_process('sleep 3', termination_callback=sleep_tc)
time.sleep(10)
vmstat.destroy()  # just so we get the termination callback - would still garbage collect without it
