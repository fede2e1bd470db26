import signal
from tycho import Location

location = Location(debug_log=False)
container = location.best_node().spawn('nginx')
tnl = container.attach_tunnel(80, localport=1234)
signal.pause()
