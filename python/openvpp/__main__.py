from openvpp.cli import main

main()
