import logging
from tycho import Location

location = Location(debug_log=False)
location.ensure_image_uploaded('nginx')
containers = []
logging.info("-----Starting")
for n in range(0, 10):
    container = location.best_node().spawn('nginx', no_image_check=True)
    containers.append(container)
for container in containers:
    container.wait_http_200(fqdn="www.atomicdroplet.com")
logging.info("-----Finished")
