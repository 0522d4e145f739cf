from mergekit_weightlevel.cli import main

main()
