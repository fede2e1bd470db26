# The seed's "Unit Testing with PyCharm" example, verbatim but for the import line (pytest collects
# the TestCase; conftest.py points KUBECONFIG at `tycho dev` before setUpClass runs).
import requests
from unittest import TestCase, main
from tycho import Location


class TfTest(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.location = Location(debug_log=False)
        cls.location.ensure_image_uploaded('nginx')

    def test_spawn_preboot(self):
        # write configuration files before we boot
        preboot = {'/usr/share/nginx/html/index.html': 'Hello World!'}
        container = TfTest.location.best_node().spawn('nginx', pre_boot_files=preboot, no_image_check=True)
        self.assertTrue(b'Hello World!' in container.fetch('/usr/share/nginx/html/index.html'))

    def test_tunnels_http(self):
        container = TfTest.location.best_node().spawn('nginx', no_image_check=True)

        # creating a tunnel after http 200
        tnl = container.wait_http_200()
        r = requests.get('http://127.0.0.1:' + str(tnl.localport))
        self.assertTrue('<title>Welcome to nginx!</title>' in r.text, 'Did not get the expected reply')

if __name__ == '__main__':
    main()
