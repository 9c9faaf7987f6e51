from c2s_monai.cli import main

main()
