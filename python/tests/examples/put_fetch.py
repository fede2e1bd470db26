from tycho import Location, last_image

location = Location(debug_log=False)
container = location.best_node().spawn('nginx')
container.put("/usr/new/path", b'Some data')
print(container.fetch("/usr/new/path"))
print("------------------------------------")
print(str(container.fetch("/etc/nginx/nginx.conf"), 'ascii'))
