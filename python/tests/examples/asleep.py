import signal
from tycho import Location

location = Location(debug_log=False)
container = location.best_node().spawn('nginx', sleep=True)
print(str(container.spawn_process('ps').wait_until_complete(), 'ascii'))
process = container.spawn_process('nginx')
container.wait_http_200()
print(str(container.spawn_process('ps').wait_until_complete(), 'ascii'))
signal.pause()
