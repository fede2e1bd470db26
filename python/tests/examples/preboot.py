import signal
from tycho import Location

location = Location(debug_log=True)
preboot = {'/usr/share/nginx/html/index.html': 'Hello World!'}
container = location.best_node().spawn('nginx', pre_boot_files=preboot)
container.attach_browser()
signal.pause()
